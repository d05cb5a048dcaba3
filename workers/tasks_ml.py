"""Celery tasks of the ml feature (gpu queue): training jobs and classify jobs. Thin: the work is in
pipeline/train and pipeline/infer; these load the job, pass sessions and clients in, record outcomes."""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, timedelta

from pipeline.config import get_settings
from pipeline.errors import PermanentError
from pipeline.store import model_registry, repo
from pipeline.store.db import session_scope
from pipeline.store.models import Job, JobState, utcnow
from workers import runtime
from workers.app import app
from workers.routing import CLASSIFY, TRAIN
from workers.runtime import JobTask


def _me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_dead(owner: str) -> bool:
    from cli.localstack.processes import pid_alive

    host, _, pid = owner.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


def _claim(job: Job, lease: float) -> bool:
    """Take the job unless another live worker is on it: a long run outlives the broker's visibility
    timeout, and the copy it then redelivers must not train the same model beside it."""
    owner = (job.metrics or {}).get("worker")
    if owner and owner != _me() and not _owner_dead(owner) and job.heartbeat_at is not None:
        beat = job.heartbeat_at if job.heartbeat_at.tzinfo else job.heartbeat_at.replace(tzinfo=UTC)
        if utcnow() - beat < timedelta(seconds=lease):
            return False
    job.metrics = {**(job.metrics or {}), "worker": _me()}
    job.heartbeat_at = utcnow()
    return True


def _query_encoder(model_path: str):
    """The index model behind the batched engine; sentence-transformers for layouts the engine lacks."""
    from pipeline.errors import ConfigError
    from pipeline.infer.embedder import get_engine_encoder

    s = get_settings()
    try:
        return get_engine_encoder(model_path, s.device, s.infer_token_budget, s.infer_compile)
    except ConfigError:
        return runtime.encoder(model_path)


def _lease() -> float:
    return max(6 * get_settings().heartbeat_seconds, 30.0)


class _Progress:
    """Writes a run's progress into the job row (throttled), doubles as heartbeat and cancel check."""

    def __init__(self, job_id: str, run: str, every: float):
        self.job_id, self.run, self.every, self.last = job_id, run, every, 0.0

    def __call__(self, kind: str, info: dict) -> None:
        from pipeline.train.trainer import Cancelled

        now = time.monotonic()
        throttled = kind in ("heartbeat", "neighbours") or (kind == "step" and not info.get("checkpointed"))
        if throttled and now - self.last < self.every:
            return
        self.last = now
        with session_scope(runtime.sql_url()) as session:
            job = session.get(Job, self.job_id)
            if job is None or job.state in JobState.FINAL:
                raise Cancelled()
            metrics = dict(job.metrics or {})
            progress = {**metrics.get("progress", {}), "run": self.run, "updated_at": utcnow().isoformat()}
            if kind == "step":
                progress.update(info, phase="training")
            elif kind == "neighbours":
                progress.update(info, phase="neighbours")
            elif kind == "eval":
                progress.update(phase="training", eval=info)
                history = dict(metrics.get("history", {}))
                history[self.run] = [*history.get(self.run, []), info]
                metrics["history"] = history
            elif kind == "resumed":
                metrics["resumed"] = [*metrics.get("resumed", []), {"run": self.run, "step": info["step"]}]
            metrics["progress"] = progress
            job.metrics = metrics
            job.heartbeat_at = utcnow()


class MlJobTask(JobTask):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        job_id = args[0] if args else kwargs.get("job_id")
        if job_id:
            with session_scope(runtime.sql_url()) as session:
                model_registry.fail_model(session, job_id, f"{type(exc).__name__}: {exc}")
        super().on_failure(exc, task_id, args, kwargs, einfo)


def _fail(job_id: str, error: str) -> None:
    with session_scope(runtime.sql_url()) as session:
        model_registry.fail_model(session, job_id, error)
        repo.fail_job(session, job_id, error)


@app.task(bind=True, base=MlJobTask, name=TRAIN)
def train(self, job_id: str) -> None:
    from elasticsearch import NotFoundError

    from pipeline.reindex import search_target
    from pipeline.train.job import TrainingJob, TrainRequest, summarise
    from pipeline.train.trainer import Cancelled

    s = get_settings()
    with session_scope(runtime.sql_url()) as session:
        job = runtime.open_job(session, job_id)
        if job is None:
            return
        if not _claim(job, _lease()):
            raise self.retry(countdown=min(_lease(), 15), max_retries=None)
        request, tenant = TrainRequest.from_options(job.options), job.tenant
    base = request.base_model or s.encoder_path
    try:
        work = TrainingJob(request, tenant, (s.data_dir / "models" / job_id).resolve(), base, s.device)
        examples = work.load()
        with session_scope(runtime.sql_url()) as session:
            model = model_registry.start_model(
                session,
                job_id,
                tenant,
                request.task,
                base,
                request.augment,
                request.neighbours if request.augment != "none" else 0,
                work.params(),
            )
            model.labels, model.data_hash = examples.label_set, work.data_hash()
        if work.needs_neighbours:
            with session_scope(runtime.sql_url()) as session:
                index, model_path = search_target(session, s.index_prefix, s.encoder_path)
                encoder = _query_encoder(model_path)
                beat = _Progress(job_id, request.augment, s.heartbeat_seconds)
                work.find_neighbours(
                    session,
                    runtime.es(),
                    index,
                    encoder,
                    {"threshold": s.dedup_threshold, "num_perm": s.minhash_perms, "shingle_words": s.shingle_words},
                    s.train_allow_undated_neighbours,
                    lambda n: beat("neighbours", {"examples_done": n, "examples": len(examples)}),
                )
            if request.augment == "fusion":
                work.load_vectors(runtime.es(), work.neighbours.index, encoder.dims)
        results = {mode: work.run(mode, _Progress(job_id, mode, s.heartbeat_seconds)) for mode in request.modes()}
    except Cancelled:  # the job row already says cancelled (or failed elsewhere); the model row follows it
        with session_scope(runtime.sql_url()) as session:
            model_registry.fail_model(session, job_id, "its training job ended before the model was finished")
        return
    except PermanentError as exc:  # bad data, unusable base model, nothing to retrieve: the row says why
        _fail(job_id, str(exc))
        return
    except NotFoundError as exc:  # no index version yet: nothing was ever ingested for neighbours
        _fail(
            job_id,
            f"no index to retrieve neighbours from ({exc.message}); ingest documents first, "
            "or train with --augment none",
        )
        return
    with session_scope(runtime.sql_url()) as session:
        job, model = session.get(Job, job_id), model_registry.model_for_job(session, job_id)
        if job.state in JobState.FINAL:
            return
        model.metrics, model.params = summarise(request, results), work.params()
        model.artefact_path, model.status = str(work.model_dir), "ready"
        model.index_version = work.neighbours.index if work.neighbours else None
        job.metrics = {
            **(job.metrics or {}),
            "result": {"model_id": model.id, **model.metrics},
            "runs": {m: {k: v for k, v in r.items() if k != "metrics"} for m, r in results.items()},
        }
        job.total = job.done = len(examples)
        job.state, job.finished_at = JobState.SUCCEEDED, utcnow()
        job.heartbeat_at = job.finished_at


@app.task(bind=True, base=JobTask, name=CLASSIFY)
def classify(self, job_id: str) -> None:
    from pipeline.index import refresh
    from pipeline.infer.classify_job import classify_documents, scope_documents
    from pipeline.infer.predictor import get_predictor
    from pipeline.reindex import search_target, still_live
    from pipeline.store.models_ml import ModelRecord

    s = get_settings()
    with session_scope(runtime.sql_url()) as session:
        job = runtime.open_job(session, job_id)
        if job is None:
            return
        if "model_id" not in (job.options or {}):
            error = _resolve_classify(session, job)
            if error:
                repo.fail_job(session, job_id, error)
                return
        opts, tenant = dict(job.options), job.tenant
    try:
        predictor = get_predictor(opts["artefact"], s.device, s.infer_token_budget, s.infer_compile)
    except PermanentError as exc:
        _fail(job_id, f"model {opts['model_id']} cannot serve ({exc}); the live model was left as it is")
        return
    while True:
        with session_scope(runtime.sql_url()) as session:  # one transaction per batch: a crash redoes one batch
            job = runtime.open_job(session, job_id)
            if job is None:
                return
            # the version live now, not the one live when the job began: a swap since (another gpu worker's
            # build, or one that ran while this task waited for redelivery) moves the rest of the job there
            index, index_model = search_target(session, s.index_prefix, s.encoder_path)
            encoder = _query_encoder(index_model) if predictor.needs_neighbours else None
            model = session.get(ModelRecord, opts["model_id"])
            docs = scope_documents(
                session,
                tenant,
                opts.get("source_job"),
                opts.get("documents"),
                not_in_job=job_id,
                limit=s.classify_docs_per_batch,
            )
            if not docs:
                job.done = model_registry.labelled_documents(session, job_id)
                if job.done:
                    refresh(runtime.es(), index)  # label filters see the new labels from now on
                failures = (job.metrics or {}).get("es_failures", 0)
                job.failed = failures
                job.state = JobState.PARTIAL if failures else JobState.SUCCEEDED
                if failures:
                    job.error = f"{failures} chunk update(s) failed in Elasticsearch (chunks gone meanwhile?)"
                job.finished_at = job.heartbeat_at = utcnow()
                return
            started = time.perf_counter()
            report = classify_documents(
                session, runtime.es(), index, predictor, model, docs, job_id, encoder, s.train_allow_undated_neighbours
            )
            metrics = dict(job.metrics or {})
            run = dict(
                metrics.get(
                    "classify", {"documents": 0, "chunks": 0, "seconds": 0.0, "real_tokens": 0, "padded_tokens": 0}
                )
            )
            run["documents"] += report.documents
            run["chunks"] += report.chunks
            run["seconds"] = round(run["seconds"] + time.perf_counter() - started, 3)
            run["real_tokens"] += report.padding.get("real_tokens", 0)
            run["padded_tokens"] += report.padding.get("padded_tokens", 0)
            run["padding_waste"] = (
                round(1 - run["real_tokens"] / run["padded_tokens"], 4) if run["padded_tokens"] else 0
            )
            metrics["classify"] = run
            metrics["es_failures"] = metrics.get("es_failures", 0) + len(report.es_failures)
            job.metrics = metrics
            done = model_registry.labelled_documents(session, job_id)
            if done == job.done:  # nothing labelled: the same documents would come back forever
                raise PermanentError(f"{len(docs)} document(s) could not be labelled (chunks missing in SQL)")
            job.done, job.heartbeat_at = done, utcnow()
            if index != f"{s.index_prefix}-read" and not still_live(session, index):
                session.rollback()  # the swap's catch-up ran before this batch: label it again in the new version


def _resolve_classify(session, job: Job) -> str | None:
    """Pin the live model (and the index) once, at the start: a promotion meanwhile does not change a
    running job. Returns an error message when there is nothing to classify with."""
    from pipeline.infer.classify_job import count_scope
    from pipeline.reindex import search_target
    from pipeline.retrieve import search

    s = get_settings()
    opts = dict(job.options or {})
    model = model_registry.live_model(session, job.tenant, opts["task"])
    if model is None:
        return (
            f"no live model for task {opts['task']!r} of tenant {job.tenant}: train one with `docpipe train` "
            "and promote it with `docpipe models promote ID`"
        )
    index, index_model = search_target(session, s.index_prefix, s.encoder_path)
    opts.update(model_id=model.id, artefact=model.artefact_path, index=index, index_model=index_model)
    if opts.get("query"):
        hits = search(
            runtime.es(),
            index,
            job.tenant,
            opts["query"],
            "hybrid",
            int(opts.get("k") or 100),
            runtime.encoder(index_model),
        )
        opts["documents"] = list(dict.fromkeys(h.doc_id for h in hits))
    job.options = opts
    job.total = count_scope(session, job.tenant, opts.get("source_job"), opts.get("documents"))
    return None
