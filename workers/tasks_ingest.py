"""Thin tasks: load the job, call pipeline/, record the outcome. Each one is safe to run twice."""

from __future__ import annotations

import logging

from pipeline.config import get_settings
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models import JobState
from workers import runtime
from workers.app import app
from workers.client import queue_depth
from workers.routing import GPU_QUEUE, INDEX_FILES, INGEST_QUEUE, READ_FILES, REVIVE_JOBS, SCORE_JOB, START_JOB
from workers.runtime import JobTask

log = logging.getLogger(__name__)
DOCS_PER_INDEX_BATCH = 128


@app.task(bind=True, base=JobTask, name=START_JOB)
def start_job(self, job_id: str) -> None:
    from pathlib import Path

    from pipeline.formats import iter_files

    with session_scope(runtime.sql_url()) as session:
        job = runtime.open_job(session, job_id)
        if job is None:
            return
        repo.add_job_files(session, job, [str(p) for p in iter_files([Path(p) for p in job.inputs])])
        pending = [f.id for f in repo.pending_files(session, job_id)]
        if not pending:
            repo.finish_if_done(session, job)
            return
    for group in _groups(pending, get_settings().files_per_task):
        read_files.delay(job_id, group)


@app.task(bind=True, base=JobTask, name=READ_FILES)
def read_files(self, job_id: str, file_ids: list[int]) -> None:
    from pipeline.ingest import Stopwatch, read_file

    layout = runtime.layout()
    for file_id in file_ids:
        with session_scope(runtime.sql_url()) as session:  # one transaction per file: a crash redoes one file
            job = runtime.open_job(session, job_id)
            if job is None:
                return
            for jobfile in repo.pending_files(session, job_id, [file_id]):
                watch = Stopwatch()
                live = runtime.live(session)
                steps = runtime.read_steps(live.model_path, live.chunk_tokens, live.chunk_overlap)
                read_file(session, job, jobfile, steps, layout.es, layout.write_alias, watch)
                for stage, seconds in watch.seconds.items():
                    repo.add_metric(job, stage, seconds)
            repo.refresh_counters(session, job)
    index_files.delay(job_id, file_ids)


@app.task(bind=True, base=JobTask, name=INDEX_FILES)
def index_files(self, job_id: str, file_ids: list[int]) -> None:
    from pipeline.index import refresh
    from pipeline.ingest import Stopwatch, index_documents
    from pipeline.reindex import still_live

    s = get_settings()
    layout = runtime.layout()
    while True:
        with session_scope(runtime.sql_url()) as session:
            job = runtime.open_job(session, job_id)
            if job is None:
                return
            docs = repo.pending_documents(session, job_id, file_ids, DOCS_PER_INDEX_BATCH)
            if not docs:
                if repo.finish_if_done(session, job):
                    refresh(layout.es, layout.read_alias)
                    runtime.send_after_commit(
                        session, SCORE_JOB, job_id
                    )  # monitor: entity tags and sentiment of the job
                return
            watch = Stopwatch()
            live = runtime.live(session)
            # the live version's physical index, with its model: a swap meanwhile is caught by the fence below
            index_documents(
                session,
                job,
                docs,
                runtime.encoder(live.model_path),
                layout.es,
                live.name,
                s.bulk_chunk_size,
                s.bulk_max_retries,
                watch,
            )
            for stage, seconds in watch.seconds.items():
                repo.add_metric(job, stage, seconds, len(docs))
            repo.refresh_counters(session, job)
            if not still_live(session, live.name):
                session.rollback()  # a reindex swapped during this batch: redo it in the new version
                continue


@app.task(name=REVIVE_JOBS)
def revive_jobs(stalled_after: float | None = None) -> list[str]:
    """Send again the next tasks of file jobs that stalled; beat sends this sweep (revive_every_seconds).

    A job has stalled when no task touched it for `stalled_after` seconds (default stall_seconds) while
    nothing waits in the queue its open work goes to: Redis loses a message whose worker was killed
    between taking it off the queue and recording it as unacknowledged. SQL knows what is open, and every
    task sent here is safe to run twice, so a task that was merely slow costs one no-op rerun.
    """
    from datetime import timedelta

    s = get_settings()
    after = timedelta(seconds=s.stall_seconds if stalled_after is None else stalled_after)
    idle = {q: queue_depth(q) == 0 for q in (INGEST_QUEUE, GPU_QUEUE)}
    revived, sends = [], []
    with session_scope(runtime.sql_url()) as session:
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
                    index_files.si(job.id, [])
                ]
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
    return [ids[i : i + size] for i in range(0, len(ids), size)]
