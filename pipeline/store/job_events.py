"""Job-end events: when a flush makes a job's state final, one webhook delivery row per subscribed endpoint.

Jobs end in many places (ingest, delete, reindex, verify, train, classify, cancel, a task's failure); all of
them flush the Job row, so the event is taken there, in the same transaction as the state: an event exists
if and only if the job really ended, and a delivery row is the outbox its sender works from. The row's unique
(endpoint, job, event) makes the insert a no-op when a finishing task runs twice.

After the commit, the ids of the new rows go to the callbacks that the process registered
(`on_committed`): the workers and the API send a delivery task at once. A process that registered none (the
CLI), or a send that failed, leaves them to beat's sweep of due deliveries.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import event, insert, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pipeline.store.models import Job, JobState
from pipeline.store.models_webhooks import DeliveryState, WebhookDelivery, WebhookEndpoint
from pipeline.types import utcnow

log = logging.getLogger(__name__)

EVENTS = tuple(f"job.{state}" for state in (JobState.SUCCEEDED, JobState.PARTIAL, JobState.FAILED, JobState.CANCELLED))
_NEW = "docpipe_webhook_deliveries"
_notifiers: list[Callable[[list[str]], None]] = []


def on_committed(callback: Callable[[list[str]], None]) -> None:
    """Call `callback(delivery ids)` after each commit that created deliveries (once per callback)."""
    if callback not in _notifiers:
        _notifiers.append(callback)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def event_payload(job: Job, event_type: str, now: datetime) -> dict:
    """The Standard Webhooks body: type, timestamp, data (the job without its server-side inputs)."""
    return {
        "type": event_type,
        "timestamp": now.isoformat(),
        "data": {
            "id": job.id,
            "tenant": job.tenant,
            "kind": job.kind,
            "state": job.state,
            "counters": job.counters(),
            "error": job.error,
            "created_at": _iso(job.created_at),
            "started_at": _iso(job.started_at),
            "finished_at": _iso(job.finished_at),
        },
    }


def _ended(session: Session) -> list[Job]:
    jobs = []
    for obj in (*session.new, *session.dirty):
        if not isinstance(obj, Job) or obj.state not in JobState.FINAL:
            continue
        if obj in session.new or inspect(obj).attrs.state.history.added:
            jobs.append(obj)
    return jobs


def _insert_ignoring_repeats(session: Session, rows: list[dict]) -> list[str]:
    """Insert rows, skipping those whose (endpoint, job, event) exists; the ids that went in."""
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        insert_fn = sqlite.insert if dialect == "sqlite" else postgresql.insert
        stmt = insert_fn(WebhookDelivery).on_conflict_do_nothing().returning(WebhookDelivery.id)
        conn = session.connection()
        return [id_ for row in rows for id_ in conn.execute(stmt, row).scalars()]
    created = []
    for row in rows:  # other databases: look first (a concurrent twin then fails the unique key instead)
        if session.execute(
            select(WebhookDelivery.id).where(
                WebhookDelivery.endpoint_id == row["endpoint_id"],
                WebhookDelivery.job_id == row["job_id"],
                WebhookDelivery.event == row["event"],
            )
        ).first():
            continue
        session.connection().execute(insert(WebhookDelivery), row)
        created.append(row["id"])
    return created


def _after_flush(session: Session, _context) -> None:
    jobs = _ended(session)
    if not jobs:
        return
    now = utcnow()
    tenants = {job.tenant for job in jobs}
    endpoints = session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.tenant, WebhookEndpoint.events).where(
            WebhookEndpoint.tenant.in_(tenants), WebhookEndpoint.enabled.is_(True)
        )
    ).all()
    rows = []
    for job in jobs:
        event_type = f"job.{job.state}"
        for endpoint_id, tenant, events in endpoints:
            if tenant == job.tenant and event_type in (events or EVENTS):
                rows.append(
                    {
                        "id": uuid.uuid4().hex,
                        "endpoint_id": endpoint_id,
                        "tenant": tenant,
                        "job_id": job.id,
                        "event": event_type,
                        "payload": event_payload(job, event_type, now),
                        "state": DeliveryState.PENDING,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                )
    if rows:
        session.info.setdefault(_NEW, []).extend(_insert_ignoring_repeats(session, rows))


def _after_commit(session: Session) -> None:
    created = session.info.pop(_NEW, None)
    if not created:
        return
    for notify in list(_notifiers):
        try:
            notify(list(created))
        except Exception as exc:  # the rows are committed: beat's sweep sends them when this could not
            log.warning("could not hand %d webhook deliveries to the sender: %s", len(created), exc)


def _forget(session: Session, *_args) -> None:
    session.info.pop(_NEW, None)


event.listen(Session, "after_flush", _after_flush)
event.listen(Session, "after_commit", _after_commit)
event.listen(Session, "after_soft_rollback", _forget)
