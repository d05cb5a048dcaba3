"""Thin tasks: load the job, call pipeline/, record the outcome. Each one is safe to run twice."""
from __future__ import annotations

import logging
from functools import lru_cache

from celery import Task
from sqlalchemy.exc import IntegrityError, OperationalError

from pipeline.config import get_settings
from pipeline.errors import RetryableError
from pipeline.services import elasticsearch_client, endpoints
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models import Job, JobState
from workers.app import app

log = logging.getLogger(__name__)
DOCS_PER_INDEX_BATCH = 128


@lru_cache
def _sql_url() -> str:
    return endpoints(get_settings()).sql_url


@lru_cache
def _es():
    return elasticsearch_client(get_settings())


@lru_cache
def _layout():
    from pipeline.index import IndexLayout

    return IndexLayout(_es(), get_settings().index_prefix)


def _live(session):
    """The live index version with its model and chunking (v1 is created on a fresh cluster).

    Looked up per task, not cached: after a reindex swap the next task uses the new version's model,
    which stays loaded next to the old one in the per-path caches below (pipeline/reindex/live.py).
    """
    from pipeline.reindex import live_index

    s = get_settings()
    return live_index(session, _layout(), s.encoder_path, s.chunk_tokens, s.chunk_overlap)


@lru_cache(maxsize=4)
def _read_steps(model_path: str, chunk_tokens: int, chunk_overlap: int):
    from pipeline.chunk import Chunker
    from pipeline.ingest import ReadSteps

    s = get_settings()
    return ReadSteps(Chunker.for_model(model_path, chunk_tokens, chunk_overlap), s.max_file_bytes,
                     s.dedup_threshold, s.minhash_perms, s.shingle_words)


def _encoder(model_path: str | None = None):
    from pipeline.embed import get_encoder  # keeps one loaded model per path

    s = get_settings()
    return get_encoder(model_path or s.encoder_path, s.device, s.embed_batch_size)


class JobTask(Task):
    """Retries what may pass; anything else marks the job failed with the reason, then re-raises."""

    # IntegrityError: two jobs inserted the same new document at once; the retry sees the winner's row.
    autoretry_for = (RetryableError, OperationalError, IntegrityError, ConnectionError)
    retry_backoff = 2
    retry_backoff_max = 60
    max_retries = 5
    acks_late = True
    reject_on_worker_lost = True

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        job_id = args[0] if args else kwargs.get("job_id")
        if job_id:
            with session_scope(_sql_url()) as session:
                repo.fail_job(session, job_id, f"{self.name} failed: {type(exc).__name__}: {exc}")


def _open_job(session, job_id: str) -> Job | None:
    job = session.get(Job, job_id)
    if job is None or job.state in JobState.FINAL:
        return None  # cancelled, finished, or unknown: nothing left to do
    repo.mark_running(session, job)
    return job


@app.task(bind=True, base=JobTask, name="docpipe.start_job")
def start_job(self, job_id: str) -> None:
    from pathlib import Path

    from pipeline.formats import iter_files

    with session_scope(_sql_url()) as session:
        job = _open_job(session, job_id)
        if job is None:
            return
        repo.add_job_files(session, job, [str(p) for p in iter_files([Path(p) for p in job.inputs])])
        pending = [f.id for f in repo.pending_files(session, job_id)]
        if not pending:
            repo.finish_if_done(session, job)
            return
    for group in _groups(pending, get_settings().files_per_task):
        read_files.delay(job_id, group)


@app.task(bind=True, base=JobTask, name="docpipe.read_files")
def read_files(self, job_id: str, file_ids: list[int]) -> None:
    from pipeline.ingest import Stopwatch, read_file

    layout = _layout()
    for file_id in file_ids:
        with session_scope(_sql_url()) as session:  # one transaction per file: a crash redoes one file
            job = _open_job(session, job_id)
            if job is None:
                return
            for jobfile in repo.pending_files(session, job_id, [file_id]):
                watch = Stopwatch()
                live = _live(session)
                steps = _read_steps(live.model_path, live.chunk_tokens, live.chunk_overlap)
                read_file(session, job, jobfile, steps, layout.es, layout.write_alias, watch)
                for stage, seconds in watch.seconds.items():
                    repo.add_metric(job, stage, seconds)
            repo.refresh_counters(session, job)
    index_files.delay(job_id, file_ids)


@app.task(bind=True, base=JobTask, name="docpipe.gpu.index_files")
def index_files(self, job_id: str, file_ids: list[int]) -> None:
    from pipeline.index import refresh
    from pipeline.ingest import Stopwatch, index_documents
    from pipeline.reindex import still_live
    from workers.tasks_monitor import score_after_commit

    s = get_settings()
    layout = _layout()
    while True:
        with session_scope(_sql_url()) as session:
            job = _open_job(session, job_id)
            if job is None:
                return
            docs = repo.pending_documents(session, job_id, file_ids, DOCS_PER_INDEX_BATCH)
            if not docs:
                if repo.finish_if_done(session, job):
                    refresh(layout.es, layout.read_alias)
                    score_after_commit(session, job_id)  # monitor: entity tags and sentiment of the job
                return
            watch = Stopwatch()
            live = _live(session)
            # the live version's physical index, with its model: a swap meanwhile is caught by the fence below
            index_documents(session, job, docs, _encoder(live.model_path), layout.es, live.name,
                            s.bulk_chunk_size, s.bulk_max_retries, watch)
            for stage, seconds in watch.seconds.items():
                repo.add_metric(job, stage, seconds, len(docs))
            repo.refresh_counters(session, job)
            if not still_live(session, live.name):
                session.rollback()  # a reindex swapped during this batch: redo it in the new version
                continue


@app.task(name="docpipe.revive_jobs")
def revive_jobs(stalled_after: float | None = None) -> list[str]:
    """Send again the next tasks of file jobs that stalled; beat sends this sweep (revive_every_seconds).

    A job has stalled when no task touched it for `stalled_after` seconds (default stall_seconds) while
    nothing waits in the queue its open work goes to: Redis loses a message whose worker was killed
    between taking it off the queue and recording it as unacknowledged. SQL knows what is open, and every
    task sent here is safe to run twice, so a task that was merely slow costs one no-op rerun.
    """
    from datetime import timedelta

    from workers.app import GPU_QUEUE, INGEST_QUEUE, queue_depth

    s = get_settings()
    after = timedelta(seconds=s.stall_seconds if stalled_after is None else stalled_after)
    idle = {q: queue_depth(q) == 0 for q in (INGEST_QUEUE, GPU_QUEUE)}
    revived, sends = [], []
    with session_scope(_sql_url()) as session:
        for job in repo.stalled_jobs(session, after):
            unread, unindexed = repo.open_work(session, job.id)
            found = []
            if idle[INGEST_QUEUE]:
                if job.state == JobState.QUEUED:
                    found.append(start_job.si(job.id))
                else:
                    found += [read_files.si(job.id, g) for g in _groups(unread, s.files_per_task)]
            if idle[GPU_QUEUE] and job.state == JobState.RUNNING and (unindexed or not unread):
                # with nothing open at all, an index task with no files closes the job
                found += [index_files.si(job.id, g) for g in _groups(unindexed, s.files_per_task)] or [
                    index_files.si(job.id, [])]
            if found:
                repo.heartbeat(session, job)  # the next sweep gives these tasks another stall period
                revived.append(job.id)
                sends += found
    for task in sends:  # after the commit, so that no task runs before the sweep's heartbeat is stored
        task.delay()
    if revived:
        log.warning("revived %d stalled job(s): %s", len(revived), ", ".join(revived))
    return revived


def _groups(ids: list[int], size: int) -> list[list[int]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]
