"""Celery tasks of the sources feature: the beat tick, and one run of a feed or folder source.

A run's failure is recorded on its source (error, consecutive failures, backed-off next run) and
the task ends normally: the schedule is the retry, and one bad source never holds up the others.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.config import get_settings
from pipeline.sources import catalog
from pipeline.sources.errors import SourceError
from pipeline.store.db import session_scope
from pipeline.store.models_sources import SourceKind
from pipeline.types import utcnow
from workers import runtime
from workers.app import app
from workers.routing import RUN_SOURCE, SOURCES_TICK, START_JOB

log = logging.getLogger(__name__)

# The fetch worker runs tasks in threads; a claimed run is one per source already, and this caps the
# downloads from one host at once (DOCPIPE_WORKER_FETCH_PER_HOST), so that many feeds of one site do not
# hammer it, nor take every thread while it is slow.
_host_slots: defaultdict[str, threading.BoundedSemaphore] = defaultdict(
    lambda: threading.BoundedSemaphore(max(1, get_settings().worker.fetch_per_host))
)
_host_slots_lock = threading.Lock()


def _host_slot(url: str) -> threading.BoundedSemaphore:
    with _host_slots_lock:
        return _host_slots[(urlsplit(url).hostname or "").lower()]


@app.task(name=SOURCES_TICK, ignore_result=True)
def tick() -> list[str]:
    """Claim every due, idle source and enqueue its run; sent by beat every few seconds."""
    s = get_settings()
    with session_scope(runtime.sql_url()) as session:
        claimed = catalog.claim_due(session, utcnow(), s.sources.lease_seconds)
    for source_id, token in claimed:
        run_source.delay(source_id, token)
    return [source_id for source_id, _ in claimed]


@app.task(bind=True, name=RUN_SOURCE, acks_late=True, reject_on_worker_lost=True)
def run_source(self, source_id: str, token: str) -> str | None:
    """Run a claimed source; returns the id of the ingest job it created, if any."""
    with session_scope(runtime.sql_url()) as session:
        source = catalog.begin_run(session, source_id, token)
        if source is None:
            return None  # superseded or already finished: a redelivered message
        kind, location, tenant = source.kind, source.location, source.tenant
        timeout, etag, modified, body_hash = source.timeout_seconds, source.etag, source.last_modified, source.body_hash
        if _last_job_failed(session, source.last_job_id):
            etag = modified = body_hash = None  # fetch everything again: the last items never got in
    try:
        if kind == SourceKind.FEED:
            job_id = _run_feed(source_id, token, tenant, location, timeout, etag, modified, body_hash)
        else:
            job_id = _run_folder(source_id, token, location)
    except SourceError as exc:
        _record_failure(source_id, token, str(exc))
        log.warning("source %s (%s) failed: %s", source_id, location, exc)
        return None
    except Exception as exc:
        # a bug or an unreachable database: the source still says what happened, then it surfaces
        _record_failure(source_id, token, f"{type(exc).__name__}: {exc}")
        raise
    if job_id:
        app.send_task(START_JOB, args=[job_id])
    return job_id


def _last_job_failed(session, job_id: str | None) -> bool:
    from pipeline.store.models import Job, JobState

    job = session.get(Job, job_id) if job_id else None
    return job is not None and job.state in (JobState.FAILED, JobState.CANCELLED)


def _run_feed(source_id, token, tenant, url, timeout, etag, modified, body_hash) -> str | None:
    from pipeline.sources.fetch import FetchPolicy
    from pipeline.sources.poll import poll_feed, prune_spool
    from pipeline.sources.prune import prune_feed
    from pipeline.store import repo

    s = get_settings()
    spool = Path(s.data_dir).resolve() / "feeds" / source_id
    with _host_slot(url):
        outcome = poll_feed(
            url,
            FetchPolicy.from_settings(s, timeout),
            spool,
            etag=etag,
            last_modified=modified,
            body_hash=body_hash,
            meta={"source_id": source_id},
        )
    with session_scope(runtime.sql_url()) as session:
        source = catalog.begin_run(session, source_id, token)
        if source is None:
            return None  # the lease expired and another run took over: its result stands
        job_id = None
        if outcome.changed and source.prune:  # items gone from the feed take their documents along
            pruned = prune_feed(session, runtime.layout(), source, outcome.identities).documents
            if pruned:
                outcome.message += f"; {len(pruned)} document(s) of items gone from the feed deleted"
        if outcome.changed:
            job_id = repo.create_job(
                session,
                tenant,
                [str(outcome.path)],
                kind="feed",
                options={
                    "source_id": source_id,
                    "url": outcome.url,
                    "items": outcome.items,
                    "skipped": outcome.skipped[:20],
                },
            ).id
        source.etag, source.last_modified, source.body_hash = outcome.etag, outcome.last_modified, outcome.body_hash
        catalog.finish_success(source, utcnow(), outcome.message, job_id)
    prune_spool(spool, s.sources.feed_files_kept)
    return job_id


def _run_folder(source_id, token, folder) -> str | None:
    from pipeline.sources.folder import scan_folder
    from pipeline.sources.sync import sync_folder

    current = scan_folder(Path(folder))  # reads every file: outside any transaction
    with session_scope(runtime.sql_url()) as session:
        source = catalog.begin_run(session, source_id, token)
        if source is None:
            return None
        result = sync_folder(session, source, current, runtime.layout(), utcnow())
        job_id = result.job.id if result.job else None
        catalog.finish_success(source, utcnow(), result.message, job_id)
    return job_id


def _record_failure(source_id: str, token: str, error: str) -> None:
    with session_scope(runtime.sql_url()) as session:
        source = catalog.begin_run(session, source_id, token)
        if source is not None:
            catalog.finish_failure(source, utcnow(), error, get_settings().sources.backoff_max)
