"""The extract task (gpu queue): the live NER model's entities for a tenant's documents. Thin: the work is in
pipeline/infer/extract.py; after each batch the monitored documents among them are tagged again, so watched
companies are matched through the organisations just found."""

from __future__ import annotations

from pipeline.config import get_settings
from pipeline.errors import PermanentError
from pipeline.store import repo
from pipeline.store.db import session_scope
from workers import runtime
from workers.app import app
from workers.routing import EXTRACT
from workers.runtime import JobTask


def _sessions():
    return session_scope(runtime.sql_url())


@app.task(bind=True, base=JobTask, name=EXTRACT)
def extract(self, job_id: str) -> None:
    from pipeline.infer.extract import ExtractSettings, extract_next_batch, pin_model
    from pipeline.infer.ner_model import get_tagger
    from workers.tasks_ml import _query_encoder

    s = get_settings()
    cfg = ExtractSettings(
        s.index_prefix, s.encoder_path, s.infer.classify_docs_per_batch, s.train.allow_undated_neighbours
    )
    with _sessions() as session:
        job = runtime.open_job(session, job_id)
        if job is None:
            return
        if "model_id" not in (job.options or {}):
            error = pin_model(session, job, cfg)
            if error:
                repo.fail_job(session, job_id, error)
                return
        opts, tenant = dict(job.options), job.tenant
    try:
        tagger = get_tagger(opts["artefact"], s.device, s.infer.token_budget, s.infer.compile)
    except PermanentError as exc:
        with _sessions() as session:
            repo.fail_job(session, job_id, f"model {opts['model_id']} cannot serve ({exc})")
        return
    touched: set[int] = set()
    while True:
        with _sessions() as session:  # one transaction per batch: a crash redoes one batch
            job = runtime.open_job(session, job_id)
            if job is None:
                return
            docs = extract_next_batch(session, runtime.es(), job, tagger, cfg, _query_encoder)
            if docs is None:
                break
            touched |= _retag(session, tenant, [d.id for d in docs])
    if touched:
        _alerts(tenant, touched)


def _retag(session, tenant: str, doc_ids: list[str]) -> set[int]:
    """Entity mentions of the documents the monitor already scored, now with the organisations found."""
    from sqlalchemy import select

    from pipeline.monitor import live_scorer, score_documents
    from pipeline.monitor.watchlist import matcher
    from pipeline.store.models import Document
    from pipeline.store.models_monitor import DocumentSentiment

    watch = matcher(session, tenant)
    if not watch:
        return set()
    scored = select(DocumentSentiment.document_id).where(DocumentSentiment.document_id.in_(doc_ids))
    docs = list(session.scalars(select(Document).where(Document.id.in_(scored)).order_by(Document.id)))
    if not docs:
        return set()
    s = get_settings()
    scorer = live_scorer(session, tenant, s.device, s.sentiment_neutral_band, s.infer.compile)
    return score_documents(session, docs, scorer, watch)


def _alerts(tenant: str, touched: set[int]) -> None:
    from pipeline.monitor import SpikeRule, evaluate
    from pipeline.types import utcnow
    from workers.tasks_monitor import deliver_alert

    with _sessions() as session:
        opened = [a.id for a in evaluate(session, tenant, touched, utcnow(), SpikeRule.from_settings(get_settings()))]
    for alert_id in opened:
        deliver_alert.delay(alert_id)
