"""Monitor tasks: entity tags, sentiment and spike checks of a finished job, and alert delivery."""

from __future__ import annotations

from pipeline.config import get_settings
from pipeline.errors import RetryableError
from pipeline.store.db import session_scope
from pipeline.store.models import Job
from workers import runtime
from workers.app import app
from workers.routing import DELIVER_ALERT, SCORE_JOB, SCORE_JOB_WITH_MODEL
from workers.runtime import RETRY

SCORE_BATCH = 64


@app.task(bind=True, name=SCORE_JOB, **RETRY)
def score_job(self, job_id: str) -> None:
    """Entity tags, topics, sentiment and spike checks for a finished job's documents. Safe to run twice.

    The lexicon runs here; with a promoted sentiment model the work moves to the gpu queue.
    """
    from pipeline.monitor import has_live_model
    from pipeline.monitor.topics import has_live_topic_model

    with session_scope(runtime.sql_url()) as session:
        job = session.get(Job, job_id)
        if job is None:
            return
        tenant = job.tenant
        model = has_live_model(session, tenant) or has_live_topic_model(session, tenant)
    if model:
        score_job_with_model.delay(job_id)
    else:
        _score(job_id, tenant)


@app.task(bind=True, name=SCORE_JOB_WITH_MODEL, **RETRY)
def score_job_with_model(self, job_id: str) -> None:
    with session_scope(runtime.sql_url()) as session:
        job = session.get(Job, job_id)
        tenant = job.tenant if job is not None else None
    if tenant is not None:
        _score(job_id, tenant)


def _score(job_id: str, tenant: str) -> None:
    from pipeline.monitor import (
        SpikeRule,
        evaluate,
        evaluate_topics,
        job_documents,
        live_scorer,
        live_topic_classifier,
        score_documents,
        score_topics,
    )
    from pipeline.monitor.watchlist import matcher
    from pipeline.types import utcnow

    s = get_settings()
    touched: set[int] = set()
    topics: set[int] = set()
    after = ""
    while True:
        with session_scope(runtime.sql_url()) as session:  # one transaction per batch
            docs = job_documents(session, job_id, after, SCORE_BATCH)
            if not docs:
                break
            scorer = live_scorer(session, tenant, s.device, s.sentiment_neutral_band, s.infer.compile)
            touched |= score_documents(session, docs, scorer, matcher(session, tenant))
            topics |= score_topics(session, docs, live_topic_classifier(session, tenant, s.device, s.infer.compile))
            after = docs[-1].id
    if not touched and not topics:
        return
    rule = SpikeRule.from_settings(s)
    with session_scope(runtime.sql_url()) as session:
        opened = [a.id for a in evaluate(session, tenant, touched, utcnow(), rule)]
        opened += [a.id for a in evaluate_topics(session, tenant, topics, utcnow(), rule)]
    for alert_id in opened:
        deliver_alert.delay(alert_id)


@app.task(bind=True, name=DELIVER_ALERT, **RETRY)
def deliver_alert(self, alert_id: int) -> None:
    """POST the alert to every configured webhook that has not taken it; retried while one fails."""
    from pipeline.monitor import alert_record, deliver, webhook_urls
    from pipeline.store.models_monitor import Alert, WatchEntity

    s = get_settings()
    urls = webhook_urls(s.alert.webhooks)
    if not urls:
        return
    with session_scope(runtime.sql_url()) as session:
        alert = session.get(Alert, alert_id)
        if alert is None:
            return
        entity = session.get(WatchEntity, alert.entity_id)
        failed = deliver(
            session,
            alert.id,
            alert_record(alert, entity.names if entity else []),
            urls,
            timeout=s.alert.webhook_timeout,
            attempts=s.alert.webhook_attempts,
            secret=s.alert.webhook_secret.get_secret_value() if s.alert.webhook_secret else None,
        )
    if failed:
        raise RetryableError(f"alert {alert_id}: webhook(s) {', '.join(failed)} did not take it")
