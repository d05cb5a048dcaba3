"""Celery tasks of the monitor feature: reindex steps, the scheduled reindex, sentiment scoring and
alert delivery. Thin: load, call pipeline/, record."""
from __future__ import annotations

import logging
from functools import lru_cache

from sqlalchemy.exc import IntegrityError, OperationalError

from pipeline.config import get_settings
from pipeline.errors import RetryableError
from pipeline.store.db import session_scope
from pipeline.store.models import Job, JobState
from workers.app import app
from workers.tasks import JobTask, _encoder, _layout, _open_job, _sql_url

log = logging.getLogger(__name__)
SCORE_BATCH = 64
REINDEX_KINDS = ("reindex", "rollback")
REINDEX_TENANT = "*"  # a reindex spans every tenant's documents
_RETRY = dict(autoretry_for=(RetryableError, OperationalError, IntegrityError, ConnectionError),
              retry_backoff=2, retry_backoff_max=60, max_retries=5, acks_late=True, reject_on_worker_lost=True)


# --- reindexing --------------------------------------------------------------------------------

@lru_cache(maxsize=4)
def _chunker(model_path: str, chunk_tokens: int, chunk_overlap: int):
    from pipeline.chunk import Chunker

    return Chunker.for_model(model_path, chunk_tokens, chunk_overlap)


def _tools(batch_docs: int | None = None):
    from pipeline.reindex import Tools

    s = get_settings()
    return Tools(layout=_layout(), encoder_for=_encoder, chunker_for=_chunker, default_model=s.encoder_path,
                 default_tokens=s.chunk_tokens, default_overlap=s.chunk_overlap, configured_model=s.encoder_model,
                 batch_docs=batch_docs or s.reindex_batch_docs, bulk_chunk_size=s.bulk_chunk_size,
                 bulk_max_retries=s.bulk_max_retries, keep_retired=s.reindex_keep_retired,
                 clock_skew_seconds=s.reindex_clock_skew_seconds)


@app.task(bind=True, base=JobTask, name="docpipe.gpu.reindex")
def reindex(self, job_id: str) -> None:
    """One step of a reindex or rollback job; sends the next step until the swap is done."""
    from pipeline.reindex import MORE, SWAPPED, cleanup, step

    with session_scope(_sql_url()) as session:
        job = _open_job(session, job_id)
        if job is None:
            return
        tools = _tools(job.options.get("batch_docs"))
        outcome = step(session, job, tools)
    if outcome == MORE:
        reindex.delay(job_id)  # a new message: ingest tasks queued meanwhile run first
    elif outcome == SWAPPED:
        with session_scope(_sql_url()) as session:
            dropped = cleanup(session, tools.layout, tools.keep_retired)
        if dropped:
            log.info("dropped retired index versions %s", ", ".join(dropped))


def create_reindex_job(session, options: dict, kind: str = "reindex") -> Job:
    from pipeline.store import repo

    return repo.create_job(session, REINDEX_TENANT, [], kind=kind, options=options)


@app.task(name="docpipe.reindex_scheduled", ignore_result=True)
def reindex_scheduled() -> str | None:
    """Beat's reindex: builds only when the configuration hash changed, else the job notes "no change"."""
    from sqlalchemy import select

    with session_scope(_sql_url()) as session:
        busy = session.scalar(select(Job.id).where(Job.kind.in_(REINDEX_KINDS),
                                                   Job.state.in_((JobState.QUEUED, JobState.RUNNING))).limit(1))
        if busy:
            return None  # one at a time; the next tick looks again
        job_id = create_reindex_job(session, {"action": "build", "reason": "scheduled"}).id
    reindex.delay(job_id)
    return job_id


# --- sentiment monitoring ----------------------------------------------------------------------

def score_after_commit(session, job_id: str) -> None:
    """Send score_job once the transaction that finished the ingest job has committed."""
    from sqlalchemy import event

    event.listen(session, "after_commit", lambda _s: score_job.delay(job_id), once=True)


@app.task(bind=True, name="docpipe.monitor.score_job", **_RETRY)
def score_job(self, job_id: str) -> None:
    """Entity tags, sentiment and spike checks for a finished job's documents. Safe to run twice.

    The lexicon runs here; with a promoted sentiment model the work moves to the gpu queue.
    """
    from pipeline.monitor import has_live_model

    with session_scope(_sql_url()) as session:
        job = session.get(Job, job_id)
        if job is None:
            return
        tenant = job.tenant
        model = has_live_model(session, tenant)
    if model:
        score_job_with_model.delay(job_id)
    else:
        _score(job_id, tenant)


@app.task(bind=True, name="docpipe.gpu.monitor.score_job", **_RETRY)
def score_job_with_model(self, job_id: str) -> None:
    with session_scope(_sql_url()) as session:
        job = session.get(Job, job_id)
        tenant = job.tenant if job is not None else None
    if tenant is not None:
        _score(job_id, tenant)


def _score(job_id: str, tenant: str) -> None:
    from pipeline.monitor import SpikeRule, evaluate, job_documents, live_scorer, score_documents
    from pipeline.monitor.watchlist import matcher
    from pipeline.store.models import utcnow

    s = get_settings()
    touched: set[int] = set()
    after = ""
    while True:
        with session_scope(_sql_url()) as session:  # one transaction per batch
            docs = job_documents(session, job_id, after, SCORE_BATCH)
            if not docs:
                break
            scorer = live_scorer(session, tenant, s.device, s.sentiment_neutral_band, s.infer_compile)
            touched |= score_documents(session, docs, scorer, matcher(session, tenant))
            after = docs[-1].id
    if not touched:
        return
    with session_scope(_sql_url()) as session:
        opened = [a.id for a in evaluate(session, tenant, touched, utcnow(), SpikeRule.from_settings(s))]
    for alert_id in opened:
        deliver_alert.delay(alert_id)


@app.task(bind=True, name="docpipe.monitor.deliver_alert", **_RETRY)
def deliver_alert(self, alert_id: int) -> None:
    """POST the alert to every configured webhook that has not taken it; retried while one fails."""
    from pipeline.monitor import alert_record, deliver, webhook_urls
    from pipeline.store.models_monitor import Alert, WatchEntity

    s = get_settings()
    urls = webhook_urls(s.alert_webhooks)
    if not urls:
        return
    with session_scope(_sql_url()) as session:
        alert = session.get(Alert, alert_id)
        if alert is None:
            return
        entity = session.get(WatchEntity, alert.entity_id)
        failed = deliver(session, alert.id, alert_record(alert, entity.names if entity else []), urls,
                         timeout=s.alert_webhook_timeout, attempts=s.alert_webhook_attempts)
    if failed:
        raise RetryableError(f"alert {alert_id}: webhook(s) {', '.join(failed)} did not take it")
