"""What every task module shares: the process's clients (made once per worker process), the base
task class that records failures on the job row, and the open-job check."""

from __future__ import annotations

import logging
import os
import threading
import time
from functools import lru_cache, partial

from celery import Task
from celery.exceptions import Retry
from celery.signals import task_prerun, worker_init, worker_process_shutdown, worker_shutdown
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError, OperationalError

from pipeline import logs
from pipeline.config import get_settings, unknown_variables
from pipeline.errors import RetryableError
from pipeline.hosts import process_id
from pipeline.jobs import heartbeat
from pipeline.services import elasticsearch_client, endpoints
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models import Job, JobState
from workers.app import app

log = logging.getLogger(__name__)

# Retried: what may pass. IntegrityError: two jobs inserted the same new document at once; the retry sees
# the winner's row.
RETRY_ON = (RetryableError, OperationalError, IntegrityError, ConnectionError)
RETRY = dict(
    autoretry_for=RETRY_ON,
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=5,
    acks_late=True,
    reject_on_worker_lost=True,
)


@lru_cache
def sql_url() -> str:
    return endpoints(get_settings()).sql_url


@lru_cache
def es():
    return elasticsearch_client(get_settings())


@lru_cache
def layout():
    from pipeline.index import IndexLayout

    return IndexLayout(es(), get_settings().index_prefix)


def live(session):
    """The live index version with its model, chunking and encoder variant (v1 is created on a fresh cluster).

    Looked up per task, not cached: after a reindex swap the next task uses the new version's model,
    which stays loaded next to the old one in the per-path caches below (pipeline/reindex/live.py).
    """
    from pipeline.reindex import live_index

    s = get_settings()
    return live_index(session, layout(), s.encoder_path, s.chunk.tokens, s.chunk.overlap)


@lru_cache(maxsize=4)
def read_steps(model_path: str, chunk_tokens: int, chunk_overlap: int):
    from pipeline.chunk import Chunker
    from pipeline.ingest import ReadSteps

    s = get_settings()
    return ReadSteps(
        Chunker.for_model(model_path, chunk_tokens, chunk_overlap),
        s.max_file_bytes,
        s.dedup,
        s.read_part_items,
        s.read_part_seconds,
    )


def encoder(model_path: str, variant: str):
    """The encoder of `model_path` run as `variant`: an index version's, never the settings' (a version keeps the
    encoder it was built with until a reindex swaps in another)."""
    from pipeline.embed import get_encoder  # keeps one loaded model per path and variant
    from pipeline.encoders import split

    s = get_settings()
    return get_encoder(model_path, s.device, s.embed_batch_size, *split(variant))


def judge_encoder(index: str, model_path: str, variant: str, tenants: list[str], building: bool = False) -> None:
    """A quantised encoder serves `index` for a tenant only once its figures against fp32 on the tenant's chunks
    pass (pipeline/encoders/guard.py); ConfigError for the first tenant below the minimums. `building`: `index`
    is a reindex build, which a refusal leaves unswapped."""
    from pipeline.embed import get_encoder
    from pipeline.encoders import guard, split

    if split(variant)[1] == "none":
        return  # nothing to judge, and no model to load for it
    candidate = encoder(model_path, variant)
    fp32 = partial(get_encoder, candidate.model_path, "cpu", candidate.batch_size, "torch", "none")
    sessions = partial(session_scope, sql_url())
    guard.judge(sessions, candidate, index, tenants, get_settings().encoder, fp32, building)


def backoff_seconds(retries: int, first: int = 2, most: int = 60) -> int:
    """The wait before retry number `retries` + 1: first, 2 x first, 4 x first, ..., at most `most` (Celery's
    exponential backoff without jitter)."""
    return min(most, first * 2**retries)


def retries_within(seconds: float, first: int = 2, most: int = 60) -> int:
    """How many retries it takes until their waits add up to `seconds`: a job outlives an outage of that long."""
    retries, waited = 0, 0
    while waited < seconds:
        waited += backoff_seconds(retries, first, most)
        retries += 1
    return retries


class JobTask(Task):
    """Retries what may pass, for DOCPIPE_WORKER_OUTAGE_SECONDS; anything else marks the job failed with the
    reason, then re-raises."""

    autoretry_for = RETRY_ON
    retry_backoff = 2
    retry_backoff_max = 60
    retry_jitter = False  # the waits add up to the outage window as documented, not to a random part of it
    acks_late = True
    reject_on_worker_lost = True

    @property
    def max_retries(self) -> int:  # type: ignore[override]
        return retries_within(get_settings().worker.outage_seconds, self.retry_backoff, self.retry_backoff_max)

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        """The job is waiting, not stalled: noting the retry on it keeps the revive sweep from sending its work
        again, and tells `docpipe job` what the wait was."""
        if isinstance(exc, Retry):
            # a task the worker's main process cancelled after the broker's connection was lost (acks late): no
            # retry was scheduled, and the main process must not open the database (a child it forks later would
            # inherit the connection); the message comes back from the broker
            return
        job_id = args[0] if args else kwargs.get("job_id")
        wait = backoff_seconds(self.request.retries, int(self.retry_backoff), self.retry_backoff_max)
        log.warning(
            "%s retries (%d of %d): %s: %s",
            self.name,
            self.request.retries + 1,
            self.max_retries,
            type(exc).__name__,
            str(exc)[:300],
            extra={"job_id": job_id},
        )
        if job_id:
            try:
                with session_scope(sql_url()) as session:
                    job = session.get(Job, job_id)
                    if job is not None and job.state not in JobState.FINAL:
                        repo.note_retry(session, job, wait, f"{type(exc).__name__}: {exc}")
            except Exception:  # noqa: BLE001 - best effort: when the database is what is away, no sweep runs either
                log.debug("no heartbeat for job %s while it retries", job_id, exc_info=True)

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        job_id = args[0] if args else kwargs.get("job_id")
        if job_id:
            with session_scope(sql_url()) as session:
                repo.fail_job(session, job_id, f"{self.name} failed: {type(exc).__name__}: {exc}")


def open_job(session, job_id: str) -> Job | None:
    """The job, marked running; None when it ended (cancelled, finished) or is unknown."""
    job = session.get(Job, job_id)
    if job is None or job.state in JobState.FINAL:
        return None  # cancelled, finished, or unknown: nothing left to do
    logs.bind(job_id=job.id, tenant=job.tenant)  # on every log line of this task from here on
    repo.mark_running(session, job)
    return job


def send_after_commit(session, name: str, *args) -> None:
    """Send task `name` once the session's transaction has committed (never for a rolled-back one)."""
    event.listen(session, "after_commit", lambda _s: app.send_task(name, args=list(args)), once=True)


def worker_id() -> str:
    """This task process (host:pid): the owner name of the files it claims."""
    return process_id()


def claim_files(job_id: str, file_ids: list[int], step, retry: bool = False) -> list[int]:
    """Claim for this process the files of `file_ids` open for `step` that no live process holds (committed
    at once, before any work); for the index step, one more delivery is counted on each unless the task is a
    Celery `retry` (poison control counts worker deaths, not errors a live process retries)."""
    from pipeline.jobs import ownership

    w = get_settings().worker
    with session_scope(sql_url()) as session:
        job = open_job(session, job_id)
        if job is None:
            return []
        taken = ownership.claim(
            session,
            job_id,
            file_ids,
            worker_id(),
            step,
            lambda owners: heartbeat.dead_workers(session, owners, w.heartbeat_ttl),
        )
        if step == ownership.Step.INDEX and taken:
            ownership.begin_index(session, job, taken, w.max_deliveries, count=not retry)
            repo.refresh_counters(session, job)
        return taken


def release_files(file_ids: list[int]) -> None:
    from pipeline.jobs import ownership

    with session_scope(sql_url()) as session:
        ownership.release(session, file_ids, worker_id())


_beating: dict[str, int | None] = {"pid": None}


def _beat(me: str, node: str) -> None:
    with session_scope(sql_url()) as session:
        heartbeat.beat(session, me, node)


def start_heartbeat(node: str = "") -> None:
    """Beat for this process from now on, from a thread: once per process (a forked child starts its own)."""
    if _beating["pid"] == os.getpid():
        return
    _beating["pid"] = os.getpid()
    me, every = worker_id(), get_settings().worker.heartbeat_seconds
    try:
        _beat(me, node)  # before the first claim, so that the claim is never taken as a dead worker's
    except Exception as exc:  # the database may be briefly away; the thread tries again
        log.warning("heartbeat of %s failed: %s", me, exc)

    def beat_forever() -> None:
        while True:
            time.sleep(every)
            try:
                _beat(me, node)
            except Exception as exc:
                log.warning("heartbeat of %s failed: %s", me, exc)

    threading.Thread(target=beat_forever, name="docpipe-heartbeat", daemon=True).start()


@task_prerun.connect
def _beat_while_running_tasks(task=None, **_kwargs) -> None:
    start_heartbeat(getattr(task.request, "hostname", None) or "" if task is not None else "")


@worker_init.connect
def _name_unknown_settings(**_kwargs) -> None:
    for line in unknown_variables(os.environ):
        log.warning(line)


@worker_shutdown.connect
@worker_process_shutdown.connect
def _forget_on_clean_exit(**_kwargs) -> None:
    if _beating["pid"] != os.getpid():
        return
    try:
        with session_scope(sql_url()) as session:
            heartbeat.forget(session, worker_id())
    except Exception as exc:
        log.warning("could not drop the heartbeat of %s: %s", worker_id(), exc)
