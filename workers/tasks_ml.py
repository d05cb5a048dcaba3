"""Celery tasks of the ml feature (gpu queue): training jobs and classify jobs. Thin: the work is in
pipeline/train and pipeline/infer; these load the job, pass sessions and clients in, record outcomes."""

from __future__ import annotations

import logging

from pipeline.config import get_settings
from pipeline.errors import PermanentError
from pipeline.jobs import lease
from pipeline.store import model_registry, repo
from pipeline.store.db import session_scope
from workers import runtime
from workers.app import app
from workers.routing import CLASSIFY, TRAIN
from workers.runtime import JobTask

log = logging.getLogger(__name__)


def _sessions():
    return session_scope(runtime.sql_url())


def _query_encoder(model_path: str, variant: str):
    """The index version's model behind the batched engine (fp32, the GPU's path: an int8 version's queries get
    vectors within the cosine its quality guard measured); the version's own encoder for layouts the engine lacks."""
    from pipeline.errors import ConfigError
    from pipeline.infer.embedder import get_engine_encoder

    s = get_settings()
    try:
        return get_engine_encoder(model_path, s.device, s.infer.token_budget, s.infer.compile)
    except ConfigError:
        return runtime.encoder(model_path, variant)


class MlJobTask(JobTask):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        job_id = args[0] if args else kwargs.get("job_id")
        if job_id:
            with _sessions() as session:
                model_registry.fail_model(session, job_id, f"{type(exc).__name__}: {exc}")
        super().on_failure(exc, task_id, args, kwargs, einfo)


@app.task(bind=True, base=MlJobTask, name=TRAIN)
def train(self, job_id: str) -> None:
    from elasticsearch import NotFoundError

    from pipeline.train import lifecycle
    from pipeline.train.ner_job import job_for, request_for  # token-level (task ner) or sequence-level
    from pipeline.train.progress import LeaseLost, ProgressWriter
    from pipeline.train.trainer import Cancelled

    s = get_settings()
    me, hold = lease.worker_id(), lease.lease_seconds(s.heartbeat_seconds)
    with _sessions() as session:
        job = runtime.open_job(session, job_id)
        if job is None:
            return
        if not lease.claim(job, me, hold):
            # another live worker trains it (the broker redelivered a run that outlived its visibility timeout)
            raise self.retry(countdown=min(hold, 15), max_retries=None)
        request, tenant = request_for(job.options), job.tenant

    def progress(run: str) -> ProgressWriter:
        return ProgressWriter(_sessions, job_id, run, s.heartbeat_seconds, me, hold)

    neighbours = lifecycle.NeighbourSettings(
        s.index_prefix,
        s.encoder_path,
        {"threshold": s.dedup.threshold, "num_perm": s.dedup.minhash_perms, "shingle_words": s.dedup.shingle_words},
        s.train.allow_undated_neighbours,
    )
    try:
        work = job_for(
            request, tenant, (s.data_dir / "models" / job_id).resolve(), request.base_model or s.encoder_path, s.device
        )
        results = lifecycle.run_training(_sessions, runtime.es(), job_id, work, neighbours, _query_encoder, progress)
    except LeaseLost as exc:  # the worker that took the job over carries on with the same model row
        log.warning("training job %s: %s; this run stops", job_id, exc)
        return
    except Cancelled:  # the job row already says cancelled (or failed elsewhere); the model row follows it
        with _sessions() as session:
            lifecycle.abandon(session, job_id)
        return
    except PermanentError as exc:  # bad data, unusable base model, nothing to retrieve: the row says why
        with _sessions() as session:
            lifecycle.fail(session, job_id, str(exc))
        return
    except NotFoundError as exc:  # no index version yet: nothing was ever ingested for neighbours
        with _sessions() as session:
            lifecycle.fail(
                session,
                job_id,
                f"no index to retrieve neighbours from ({exc.message}); ingest documents first, "
                "or train with --augment none",
            )
        return
    with _sessions() as session:
        lifecycle.complete(session, job_id, work, results)


@app.task(bind=True, base=JobTask, name=CLASSIFY)
def classify(self, job_id: str) -> None:
    from pipeline.infer.classify_run import ClassifySettings, admit_predictor, classify_next_batch, pin_model
    from pipeline.infer.predictor import Predictor, get_predictor

    s = get_settings()
    cfg = ClassifySettings(
        s.index_prefix, s.encoder_path, s.infer.classify_docs_per_batch, s.train.allow_undated_neighbours
    )
    with _sessions() as session:
        job = runtime.open_job(session, job_id)
        if job is None:
            return
        if "model_id" not in (job.options or {}):
            error = pin_model(session, runtime.es(), job, cfg, runtime.encoder)
            if error:
                repo.fail_job(session, job_id, error)
                return
        opts = dict(job.options)
    try:
        predictor = get_predictor(opts["artefact"], s.device, s.infer.token_budget, s.infer.compile, s.infer.quantize)
        admit_predictor(  # an int8 predictor is judged against fp32 (loaded only to measure) first
            _sessions,
            job_id,
            opts["model_id"],
            predictor,
            lambda: Predictor(opts["artefact"], "cpu", s.infer.token_budget),
            s.infer.guard_sample,
            s.infer.min_agreement,
        )
    except PermanentError as exc:
        with _sessions() as session:
            repo.fail_job(
                session, job_id, f"model {opts['model_id']} cannot serve ({exc}); the live model was left as it is"
            )
        return
    while True:
        with _sessions() as session:  # one transaction per batch: a crash redoes one batch
            job = runtime.open_job(session, job_id)
            if job is None or classify_next_batch(session, runtime.es(), job, predictor, cfg, _query_encoder):
                return
