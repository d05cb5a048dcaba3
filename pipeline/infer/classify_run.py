"""A classify job run batch by batch: pin the model, label the next documents, keep the accounts, finish.

Each batch is one transaction (a crash redoes one batch). The job's classify stage (job_stages) counts the
documents in and labelled; the job's metrics keep the run's model accounts (documents, chunks, seconds, real
and padded tokens), which predictor labelled (torch, or onnx-int8 with its agreement with fp32) and the
Elasticsearch updates that failed; a job whose chunk updates failed ends `partial` with the count, not `succeeded`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from pipeline.errors import PermanentError
from pipeline.index import refresh
from pipeline.infer import agreement
from pipeline.infer.agreement import Sessions
from pipeline.infer.classify_job import ClassifyReport, classify_documents, count_scope, scope_documents
from pipeline.infer.predictor import Predictor
from pipeline.jobs.stats import JobStats, add_job_stats
from pipeline.reindex import search_target, still_live
from pipeline.retrieve import search
from pipeline.store import model_registry
from pipeline.store.models import Job, JobState, utcnow
from pipeline.store.models_ml import ModelRecord

EncoderFor = Callable[[str, str], object]  # model path, encoder variant -> query encoder
CHUNKS_MISSING = "chunks_missing"  # the classify stage's drop reason


@dataclass(frozen=True)
class ClassifySettings:
    index_prefix: str
    encoder_path: str  # the index's model when no version records one
    docs_per_batch: int
    allow_undated_neighbours: bool


def pin_model(session: Session, es, job: Job, cfg: ClassifySettings, encoder_for: EncoderFor) -> str | None:
    """Pin the live model (and the index) once, at the start: a promotion meanwhile does not change a
    running job. A query scope becomes its hits' documents. Returns an error when there is nothing to
    classify with."""
    opts = dict(job.options or {})
    model = model_registry.live_model(session, job.tenant, opts["task"])
    if model is None:
        return (
            f"no live model for task {opts['task']!r} of tenant {job.tenant}: train one with `docpipe train` "
            "and promote it with `docpipe models promote ID`"
        )
    index, index_model, index_encoder = search_target(session, cfg.index_prefix, cfg.encoder_path)
    opts.update(model_id=model.id, artefact=model.artefact_path, index=index, index_model=index_model)
    if opts.get("query"):
        k = int(opts.get("k") or 100)
        hits = search(es, index, job.tenant, opts["query"], "hybrid", k, encoder_for(index_model, index_encoder))
        opts["documents"] = list(dict.fromkeys(h.doc_id for h in hits))
    job.options = opts
    job.total = count_scope(session, job.tenant, opts.get("source_job"), opts.get("documents"))
    return None


def record_batch(job: Job, report: ClassifyReport, seconds: float) -> None:
    """Add one batch to the job's accounts."""
    metrics = dict(job.metrics or {})
    run = {"documents": 0, "chunks": 0, "seconds": 0.0, "real_tokens": 0, "padded_tokens": 0}
    run.update(metrics.get("classify", {}))
    run["documents"] += report.documents
    run["chunks"] += report.chunks
    run["seconds"] = round(run["seconds"] + seconds, 3)
    run["real_tokens"] += report.padding.get("real_tokens", 0)
    run["padded_tokens"] += report.padding.get("padded_tokens", 0)
    run["padding_waste"] = round(1 - run["real_tokens"] / run["padded_tokens"], 4) if run["padded_tokens"] else 0
    metrics["classify"] = run
    metrics["es_failures"] = metrics.get("es_failures", 0) + len(report.es_failures)
    job.metrics = metrics


def record_predictor(job: Job, variant: str, agreement: dict | None) -> None:
    """Which predictor labels the job (torch, onnx-int8) and, for int8, its agreement with fp32."""
    metrics = dict(job.metrics or {})
    run = {**metrics.get("classify", {}), "predictor": variant}
    if agreement is not None:
        run["agreement"] = agreement
    metrics["classify"] = run
    job.metrics = metrics


def admit_predictor(
    sessions: Sessions,
    job_id: str,
    model_id: str,
    predictor: Predictor,
    reference: Callable[[], Predictor],
    sample: int,
    min_agreement: float,
) -> None:
    """Let `predictor` label the job's documents. An int8 one is first judged against the fp32 `reference()` on up
    to `sample` of the tenant's chunks (pipeline/infer/agreement.py); the job records which predictor labels and
    the figures; a ConfigError that says what to set refuses one whose labels agree less than `min_agreement`."""
    figures = agreement.assess(sessions, model_id, predictor, reference, sample)
    with sessions() as session:
        job = session.get(Job, job_id)
        if job is not None:
            record_predictor(job, predictor.variant, figures.as_dict() if figures else None)
    agreement.refuse_below(figures, model_id, min_agreement)


def classify_stats(documents: int, labelled: int, seconds: float) -> JobStats:
    """The classify stage's accounts for one batch: documents in, labelled out; a document whose chunks
    are gone from SQL is dropped."""
    stats = JobStats()
    stats["classify"].seconds = seconds
    stats["classify"].passed(labelled)
    if documents > labelled:
        stats["classify"].drop(CHUNKS_MISSING, documents - labelled)
    return stats


def advance(session: Session, job: Job, batch_size: int) -> None:
    """Count the labelled documents; a batch that labelled none would come back forever, so it fails the job."""
    done = model_registry.labelled_documents(session, job.id)
    if done == job.done:
        raise PermanentError(f"{batch_size} document(s) could not be labelled (chunks missing in SQL)")
    job.done, job.heartbeat_at = done, utcnow()


def finish(session: Session, job: Job) -> None:
    """Close the job: succeeded, or partial with the count of chunk updates Elasticsearch refused."""
    job.done = model_registry.labelled_documents(session, job.id)
    failures = (job.metrics or {}).get("es_failures", 0)
    job.failed = failures
    job.state = JobState.PARTIAL if failures else JobState.SUCCEEDED
    if failures:
        job.error = f"{failures} chunk update(s) failed in Elasticsearch (chunks gone meanwhile?)"
    job.finished_at = job.heartbeat_at = utcnow()


def classify_next_batch(
    session: Session, es, job: Job, predictor: Predictor, cfg: ClassifySettings, encoder_for: EncoderFor
) -> bool:
    """Label the next batch of the job's documents, or finish the job when none is left; True when finished.

    A batch written into a version that a swap retired meanwhile is rolled back, to be labelled again in
    the new version by the next call.
    """
    opts = job.options
    # the version live now, not the one live when the job began: a swap since (another gpu worker's build,
    # or one that ran while this task waited for redelivery) moves the rest of the job there
    index, index_model, index_encoder = search_target(session, cfg.index_prefix, cfg.encoder_path)
    docs = scope_documents(
        session,
        job.tenant,
        opts.get("source_job"),
        opts.get("documents"),
        not_in_job=job.id,
        limit=cfg.docs_per_batch,
    )
    if not docs:
        finish(session, job)
        if job.done:
            refresh(es, index)  # label filters see the new labels from now on
        return True
    encoder = encoder_for(index_model, index_encoder) if predictor.needs_neighbours else None
    model = session.get(ModelRecord, opts["model_id"])
    if model is None:
        raise PermanentError(f"model {opts['model_id']} was deleted while the job ran")
    started, labelled_before = time.perf_counter(), job.done
    report = classify_documents(
        session, es, index, predictor, model, docs, job.id, encoder, cfg.allow_undated_neighbours
    )
    seconds = time.perf_counter() - started
    record_batch(job, report, seconds)
    advance(session, job, len(docs))
    add_job_stats(session, job.id, classify_stats(len(docs), job.done - labelled_before, seconds))
    if index != f"{cfg.index_prefix}-read" and not still_live(session, index):
        session.rollback()  # the swap's catch-up ran before this batch: label it again in the new version
    return False
