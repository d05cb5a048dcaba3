"""Thin tasks: load the job, call pipeline/, record the outcome. Each one is safe to run twice."""

from __future__ import annotations

import logging
import time

from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready

from pipeline.config import get_settings
from pipeline.jobs import ownership
from pipeline.jobs.revive import Step, file_groups, revived_jobs, select_resends
from pipeline.store import repo
from pipeline.store.db import session_scope
from workers import runtime
from workers.app import app
from workers.client import waiting_jobs
from workers.routing import (
    GPU_QUEUE,
    INDEX_FILES,
    INGEST_QUEUE,
    READ_FILES,
    RECLAIM_WORK,
    REVIVE_JOBS,
    SCORE_JOB,
    START_JOB,
)
from workers.runtime import JobTask

log = logging.getLogger(__name__)

# A job's counters are recomputed from all its rows, so that they are exact whatever was redelivered; that costs
# more the larger the job (a 10k-file job: ~25 ms on SQLite). A task recomputes them at most this often while it
# works through its files or batches, and always as it ends.
PROGRESS_SECONDS = 1.0


class Progress:
    def __init__(self):
        self.counted = time.monotonic()

    def due(self, last: bool = False) -> bool:
        if last or time.monotonic() - self.counted >= PROGRESS_SECONDS:
            self.counted = time.monotonic()
            return True
        return False


@app.task(bind=True, base=JobTask, name=START_JOB)
def start_job(self, job_id: str) -> None:
    from pathlib import Path

    from pipeline.formats import iter_files
    from pipeline.formats.files import split_names
    from pipeline.jobs.counting import count_pending_files

    with session_scope(runtime.sql_url()) as session:
        job = runtime.open_job(session, job_id)
        if job is None:
            return
        named, refused = split_names(list(iter_files([Path(p) for p in job.inputs])))
        repo.add_job_files(session, job, named)
        for letter in refused:
            repo.add_dead_letter(session, job, letter, None)
        s = get_settings()
        files = repo.pending_files(session, job_id)
        count_pending_files(session, files, s.max_file_bytes)  # the total is known before any document is indexed
        repo.refresh_counters(session, job)
        pending = [f.id for f in files]
        if not pending:
            repo.finish_if_done(session, job)
            return
        split = file_groups(session, pending, s.files_per_task, s.bytes_per_task)
    for group in split:
        read_files.delay(job_id, group)


@app.task(bind=True, base=JobTask, name=READ_FILES)
def read_files(self, job_id: str, file_ids: list[int]) -> None:
    retry = self.request.retries > 0
    taken = runtime.claim_files(job_id, file_ids, ownership.Step.READ, retry)
    try:
        read_all = _read_claimed(job_id, taken, count=not retry)
    except BaseException:
        runtime.release_files(taken)  # a retry may run in another process: see index_files
        raise
    if read_all:
        runtime.release_files(taken)
        index_files.delay(job_id, file_ids)


def _read_claimed(job_id: str, taken: list[int], count: bool) -> bool:
    """Read the claimed files; False when the job ended or a timeout handed the rest to another task."""
    from pipeline.ingest import is_infrastructure

    progress = Progress()
    counted: dict[int, bool] = {}  # the next file's delivery, counted in the previous file's transaction
    for n, file_id in enumerate(taken):
        go = counted.pop(file_id) if file_id in counted else _begin_read(job_id, file_id, count)
        if not go:
            continue  # given up after too many deliveries (a worker_lost dead letter), or the job ended
        following = taken[n + 1] if n + 1 < len(taken) else None
        stored_a_part, items = False, None
        try:
            while True:  # one transaction per part of the file: a crash or a timeout redoes one part
                read, items = _read_part(job_id, file_id, following, count, progress, n == len(taken) - 1, items)
                if read is None:
                    return False  # the job ended
                stored_a_part = True
                if read != PART:
                    break
            if following is not None:
                counted[following] = read == FILE_AND_NEXT
        except Exception as exc:  # noqa: BLE001 - sorted below: services' failures retry, the rest is the file's
            if _soft_limit(exc):  # the hard limit follows: hand the rest on (give this file up if it stalled)
                _timed_out(job_id, file_id, taken[:n], taken[n + 1 :], moved_on=stored_a_part)
                return False
            if is_infrastructure(exc):
                raise
            _reject_file(job_id, file_id, exc)
    return True


def _soft_limit(exc: BaseException | None) -> bool:
    """Whether `exc` is the soft time limit, also where a library wrapped it: struck inside a SQL statement it
    arrives as SQLAlchemy's StatementError, which looked like the database's failure and failed the job."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, SoftTimeLimitExceeded):
            return True
        seen.add(id(exc))
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__
    return False


PART, FILE, FILE_AND_NEXT = "part", "file", "file and next"


def _read_part(job_id: str, file_id: int, following: int | None, count: bool, progress: Progress, last: bool, items):
    """Read and commit the file's next part with `items`, its reader where the previous part left it (None: a new
    one). (PART, reader) when more follows, FILE when the file is read, FILE_AND_NEXT when it is and the following
    file's delivery was counted in the same commit; None when the job ended."""
    from pipeline.ingest import FileItems, read_file

    layout = runtime.layout()
    with session_scope(runtime.sql_url()) as session:
        job = runtime.open_job(session, job_id)
        if job is None:
            return None, None
        more = False
        for jobfile in repo.pending_files(session, job_id, [file_id]):
            live = runtime.live(session)
            steps = runtime.read_steps(live.model_path, live.chunk_tokens, live.chunk_overlap)
            items = items or FileItems(jobfile.path, steps.max_file_bytes, skip=jobfile.read_items)
            read_file(session, job, jobfile, steps, layout.es, layout.write_alias, items)
            more = jobfile.status == ownership.READ_PENDING
            if more:  # poison control counts the takes that stored nothing: this one moved the file on
                jobfile.deliveries = min(jobfile.deliveries, 1)
        if more:
            if progress.due():
                repo.refresh_counters(session, job)
            return PART, items
        # The next file's delivery is counted in this commit, not in a transaction of its own: a worker
        # killed while reading it has counted it all the same, and one dying before this commit has not.
        verdict = following is not None and _count_delivery(session, job, following, count)
        if progress.due(last=last) or (following is not None and not verdict):
            repo.refresh_counters(session, job)
    return (FILE_AND_NEXT if verdict else FILE), None


def _begin_read(job_id: str, file_id: int, count: bool) -> bool:
    """Count the delivery in a transaction of its own, so that a worker killed by this file still counts it."""
    with session_scope(runtime.sql_url()) as session:
        job = runtime.open_job(session, job_id)
        if job is None:
            return False
        if _count_delivery(session, job, file_id, count):
            return True
        repo.refresh_counters(session, job)
        return False


def _count_delivery(session, job, file_id: int, count: bool) -> bool:
    """One more delivery of the file, in the caller's transaction; False when it is not to be read (see
    ownership.begin_read)."""
    return ownership.begin_read(session, job, file_id, get_settings().worker.max_deliveries, count)


def _timed_out(job_id: str, file_id: int, done: list[int], rest: list[int], moved_on: bool) -> None:
    """The soft time limit struck while reading `file_id`: a file that stored a part in this task goes on in the
    next one (its remaining parts), one that stored nothing is given up as a `timeout` dead letter."""
    from pipeline.errors import Reason
    from pipeline.store.models import JobFile

    soft = get_settings().worker.read_soft_limit
    with session_scope(runtime.sql_url()) as session:
        job, jobfile = runtime.open_job(session, job_id), session.get(JobFile, file_id)
        if job is None or jobfile is None:
            return
        if moved_on:
            rest = [file_id, *rest]
            detail = f"handed on after {jobfile.read_items} items, at the read task's soft time limit ({soft:g} s)"
        else:
            detail = (
                f"reading it outlasted the read task's soft time limit ({soft:g} s, DOCPIPE_WORKER_READ_SOFT_LIMIT)"
            )
            ownership.give_up(session, job, jobfile, Reason.TIMEOUT, detail)
        ownership.release(session, done + rest, runtime.worker_id())
        repo.refresh_counters(session, job)
    (log.info if moved_on else log.warning)("file %s of job %s: %s", file_id, job_id, detail)
    if rest:
        read_files.delay(job_id, rest)
    index_files.delay(job_id, done)


def _reject_file(job_id: str, file_id: int, exc: Exception) -> None:
    """The file's transaction was rolled back; its dead letter goes in a fresh one and the job goes on."""
    from pipeline.ingest import reject_file

    log.warning("file %s of job %s: %s: %s", file_id, job_id, type(exc).__name__, str(exc)[:300])
    with session_scope(runtime.sql_url()) as session:
        job = runtime.open_job(session, job_id)
        if job is not None and reject_file(session, job, file_id, exc) is not None:
            repo.refresh_counters(session, job)


@app.task(bind=True, base=JobTask, name=INDEX_FILES)
def index_files(self, job_id: str, file_ids: list[int]) -> None:
    file_ids = runtime.claim_files(job_id, file_ids, ownership.Step.INDEX, retry=self.request.retries > 0)
    try:
        # the last retry dead-letters documents Elasticsearch still refuses (429/5xx) and lets the job go on
        _index_claimed(job_id, file_ids, last_try=self.request.retries >= self.max_retries)
    except BaseException:
        # a retry (or a reclaim) may run in another process: a claim kept by this live one would block it
        runtime.release_files(file_ids)
        raise


def _index_claimed(job_id: str, file_ids: list[int], last_try: bool) -> None:
    from pipeline.index import refresh
    from pipeline.ingest import index_documents
    from pipeline.reindex import still_live

    s = get_settings()
    layout = runtime.layout()
    _guard_encoder(job_id)
    progress = Progress()
    while True:
        # the model runs with no transaction open: a SQL write lock held through the embedding stalled every
        # read task of the ingest queue (SQLite) or the job row (PostgreSQL) until the batch committed
        ahead = _embed_ahead(job_id, file_ids)
        with session_scope(runtime.sql_url()) as session:
            job = runtime.open_job(session, job_id)
            if job is None:
                return
            docs = repo.pending_documents(
                session, job_id, file_ids, s.index_batch_docs, s.index_batch_chunks, s.index_batch_chars
            )
            if not docs:
                ownership.release(session, file_ids, runtime.worker_id())
                if repo.finish_if_done(session, job):
                    refresh(layout.es, layout.read_alias)
                    runtime.send_after_commit(
                        session, SCORE_JOB, job_id
                    )  # monitor: entity tags and sentiment of the job
                return
            live = runtime.live(session)
            # the live version's physical index, with its model: a swap meanwhile is caught by the fence below;
            # documents changed since `ahead` read them are embedded again here
            index_documents(
                session,
                job,
                docs,
                runtime.encoder(live.model_path, live.encoder),
                layout.es,
                live.name,
                s.bulk_chunk_size,
                s.bulk_max_retries,
                last_try,
                ahead,
            )
            if progress.due():  # the task's last batch is followed by finish_if_done, which recomputes them
                repo.refresh_counters(session, job)
            if not still_live(session, live.name):
                session.rollback()  # a reindex swapped during this batch: redo it in the new version
                continue


def _embed_ahead(job_id: str, file_ids: list[int]):
    """Vectors of the next batch's chunks, read in a short transaction and embedded after it closed; None when
    there is nothing to embed (the batch loop then finds out why in its own transaction)."""
    from pipeline.ingest import chunk_texts, embed_ahead
    from pipeline.store.models import Job, JobState

    s = get_settings()
    with session_scope(runtime.sql_url()) as session:
        job = session.get(Job, job_id)
        if job is None or job.state in JobState.FINAL:
            return None
        docs = repo.pending_documents(
            session, job_id, file_ids, s.index_batch_docs, s.index_batch_chunks, s.index_batch_chars
        )
        if not docs:
            return None
        live = runtime.live(session)
        encoder = runtime.encoder(live.model_path, live.encoder)
        items = chunk_texts(session, docs)
    return embed_ahead(encoder, items)


def _guard_encoder(job_id: str) -> None:
    """The live version's encoder (its variant as recorded, whatever the settings say now) writes for this job's
    tenant only once it passed the quality guard there (runtime.judge_encoder)."""
    from pipeline.store.models import Job

    with session_scope(runtime.sql_url()) as session:
        job = session.get(Job, job_id)
        if job is None:
            return
        live, tenant = runtime.live(session), job.tenant
    runtime.judge_encoder(live.name, live.model_path, live.encoder, [tenant])


@app.task(name=REVIVE_JOBS)
def revive_jobs(stalled_after: float | None = None) -> list[str]:
    """Send again the next tasks of file jobs that stalled; beat sends this sweep (revive_every_seconds).

    A job has stalled when no task touched it for `stalled_after` seconds (default stall_seconds) while
    none of its messages waits in the queue its open work goes to (pipeline/jobs/revive.py chooses what to resend).
    """
    from datetime import timedelta

    s = get_settings()
    after = timedelta(seconds=s.stall_seconds if stalled_after is None else stalled_after)
    ingest_waiting, gpu_waiting = waiting_jobs(INGEST_QUEUE), waiting_jobs(GPU_QUEUE)
    with session_scope(runtime.sql_url()) as session:
        resends = select_resends(session, after, ingest_waiting, gpu_waiting, s.files_per_task, s.bytes_per_task)
    _send(resends)  # after the commit, so that no task runs before the sweep's heartbeat is stored
    revived = revived_jobs(resends)
    if revived:
        log.warning("revived %d stalled job(s): %s", len(revived), ", ".join(revived))
    return revived


def _send(resends) -> None:
    for r in resends:
        if r.step == Step.START:
            start_job.delay(r.job_id)
        elif r.step == Step.READ:
            read_files.delay(r.job_id, list(r.file_ids))
        elif r.step == Step.INDEX:
            index_files.delay(r.job_id, list(r.file_ids))
        else:
            from workers.tasks_reindex import reindex

            reindex.delay(r.job_id)


@app.task(name=RECLAIM_WORK)
def reclaim_work() -> list[str]:
    """Send again the work that dead task processes held (pipeline/jobs/reclaim.py); beat sends this sweep
    every DOCPIPE_WORKER_RECLAIM_EVERY_SECONDS, and every worker runs it once as it starts."""
    from datetime import timedelta

    from pipeline.jobs import heartbeat
    from pipeline.jobs.reclaim import select_reclaims

    w, s = get_settings().worker, get_settings()
    with session_scope(runtime.sql_url()) as session:
        resends = select_reclaims(session, w.heartbeat_ttl, s.files_per_task)
        heartbeat.prune(session, timedelta(seconds=max(100 * w.heartbeat_ttl, 3600)))
    _send(resends)  # after the commit: the claims are dropped before the resent tasks try to take them
    reclaimed = revived_jobs(resends)
    if reclaimed:
        log.warning("reclaimed the work of dead workers in %d job(s): %s", len(reclaimed), ", ".join(reclaimed))
    return reclaimed


@worker_ready.connect
def _reclaim_at_start(**_kwargs) -> None:
    """A worker that comes back after a crash sends its former self's work again at once."""
    from pipeline.store.db import engine_for

    try:
        reclaim_work()
    except Exception as exc:  # the sweep will try again; a worker must start even with the database away
        log.warning("reclaim at worker start failed: %s", exc)
    finally:
        engine_for(runtime.sql_url()).dispose()  # no connection of this parent may leak into forked children
