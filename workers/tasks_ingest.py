"""Thin tasks: load the job, call pipeline/, record the outcome. Each one is safe to run twice."""

from __future__ import annotations

import logging

from pipeline.config import get_settings
from pipeline.jobs.revive import Step, groups, revived_jobs, select_resends
from pipeline.store import repo
from pipeline.store.db import session_scope
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
    for group in groups(pending, get_settings().files_per_task):
        read_files.delay(job_id, group)


@app.task(bind=True, base=JobTask, name=READ_FILES)
def read_files(self, job_id: str, file_ids: list[int]) -> None:
    from pipeline.ingest import read_file

    layout = runtime.layout()
    for file_id in file_ids:
        with session_scope(runtime.sql_url()) as session:  # one transaction per file: a crash redoes one file
            job = runtime.open_job(session, job_id)
            if job is None:
                return
            for jobfile in repo.pending_files(session, job_id, [file_id]):
                live = runtime.live(session)
                steps = runtime.read_steps(live.model_path, live.chunk_tokens, live.chunk_overlap)
                read_file(session, job, jobfile, steps, layout.es, layout.write_alias)
            repo.refresh_counters(session, job)
    index_files.delay(job_id, file_ids)


@app.task(bind=True, base=JobTask, name=INDEX_FILES)
def index_files(self, job_id: str, file_ids: list[int]) -> None:
    from pipeline.index import refresh
    from pipeline.ingest import index_documents
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
            )
            repo.refresh_counters(session, job)
            if not still_live(session, live.name):
                session.rollback()  # a reindex swapped during this batch: redo it in the new version
                continue


@app.task(name=REVIVE_JOBS)
def revive_jobs(stalled_after: float | None = None) -> list[str]:
    """Send again the next tasks of file jobs that stalled; beat sends this sweep (revive_every_seconds).

    A job has stalled when no task touched it for `stalled_after` seconds (default stall_seconds) while
    nothing waits in the queue its open work goes to (pipeline/jobs/revive.py chooses what to resend).
    """
    from datetime import timedelta

    s = get_settings()
    after = timedelta(seconds=s.stall_seconds if stalled_after is None else stalled_after)
    ingest_idle, gpu_idle = queue_depth(INGEST_QUEUE) == 0, queue_depth(GPU_QUEUE) == 0
    with session_scope(runtime.sql_url()) as session:
        resends = select_resends(session, after, ingest_idle, gpu_idle, s.files_per_task)
    for r in resends:  # after the commit, so that no task runs before the sweep's heartbeat is stored
        if r.step == Step.START:
            start_job.delay(r.job_id)
        elif r.step == Step.READ:
            read_files.delay(r.job_id, list(r.file_ids))
        else:
            index_files.delay(r.job_id, list(r.file_ids))
    revived = revived_jobs(resends)
    if revived:
        log.warning("revived %d stalled job(s): %s", len(revived), ", ".join(revived))
    return revived
