"""Webhook tasks (fetch queue): one attempt of a delivery, and beat's sweep of due deliveries.

A job that ends writes its delivery rows in its own transaction (pipeline/store/job_events.py); this module
asks to be told of them after each commit in a worker process and sends one task per row. A failed attempt
is retried by Celery after the backoff while that is short; longer waits, and any task lost on the way, are
picked up by the sweep from the row's `next_attempt_at`.
"""

from __future__ import annotations

import logging

from pipeline.config import get_settings
from pipeline.store import job_events
from pipeline.store.db import session_scope
from pipeline.types import utcnow
from workers import runtime
from workers.app import app
from workers.routing import DELIVER_WEBHOOK, WEBHOOKS_SWEEP

log = logging.getLogger(__name__)

# a wait longer than this is left to the sweep: a countdown message held that long by a worker is lost on restart
CELERY_RETRY_MAX_SECONDS = 600


def send_deliveries(delivery_ids: list[str]) -> None:
    for delivery_id in delivery_ids:
        app.send_task(DELIVER_WEBHOOK, args=[delivery_id])


job_events.on_committed(send_deliveries)


@app.task(bind=True, name=DELIVER_WEBHOOK, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def deliver(self, delivery_id: str) -> str | None:
    """One attempt; returns the delivery's state afterwards ("pending" while retries remain), None when there
    was nothing to do (delivered already, not due, or another message holds the attempt)."""
    from pipeline.webhooks import DeliveryPolicy, claim, record_attempt, send_claimed

    policy = DeliveryPolicy.from_settings(get_settings())
    with session_scope(runtime.sql_url()) as session:
        claimed = claim(session, delivery_id, utcnow(), policy)
    if claimed is None:
        return None
    answer = send_claimed(claimed, policy, utcnow())
    with session_scope(runtime.sql_url()) as session:
        delay = record_attempt(session, claimed, answer, utcnow(), policy)
    if answer.ok:
        return "delivered"
    log.warning("webhook delivery %s attempt %d failed: %s", delivery_id, claimed.attempt, answer.error)
    if delay is None:
        return "failed"
    if delay <= CELERY_RETRY_MAX_SECONDS:
        raise self.retry(countdown=delay, max_retries=None)
    return "pending"


@app.task(name=WEBHOOKS_SWEEP, ignore_result=True)
def sweep() -> int:
    """Send a task for every delivery whose attempt is due; the claim keeps a twin message from POSTing too."""
    from pipeline.webhooks import due_deliveries

    with session_scope(runtime.sql_url()) as session:
        due = due_deliveries(session, utcnow())
    send_deliveries(due)
    return len(due)
