"""Reindex tasks (gpu queue): one step of a build or rollback per message, and beat's scheduled reindex."""

from __future__ import annotations

import logging
from functools import lru_cache

from pipeline.config import get_settings
from pipeline.store.db import session_scope
from workers import runtime
from workers.app import app
from workers.routing import (
    REINDEX,
    REINDEX_CRON_TICK,
    REINDEX_SCHEDULED,
    VERIFY_AFTER_RESTART,
    VERIFY_INDEX,
    VERIFY_SCHEDULED,
)
from workers.runtime import JobTask

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def _chunker(model_path: str, chunk_tokens: int, chunk_overlap: int):
    from pipeline.chunk import Chunker

    return Chunker.for_model(model_path, chunk_tokens, chunk_overlap)


def _tools(batch_docs: int | None = None):
    from pipeline.reindex import Tools

    s = get_settings()
    return Tools(
        layout=runtime.layout(),
        encoder_for=runtime.encoder,
        chunker_for=_chunker,
        default_model=s.encoder_path,
        default_tokens=s.chunk.tokens,
        default_overlap=s.chunk.overlap,
        configured_model=s.encoder_model,
        batch_docs=batch_docs or s.reindex.batch_docs,
        bulk_chunk_size=s.bulk_chunk_size,
        bulk_max_retries=s.bulk_max_retries,
        keep_retired=s.reindex.keep_retired,
        clock_skew_seconds=s.reindex.clock_skew_seconds,
    )


@app.task(bind=True, base=JobTask, name=REINDEX)
def reindex(self, job_id: str) -> None:
    """One step of a reindex or rollback job; sends the next step until the swap is done."""
    from pipeline.reindex import MORE, SWAPPED, cleanup, step

    _guard_build(job_id)
    with session_scope(runtime.sql_url()) as session:
        job = runtime.open_job(session, job_id)
        if job is None:
            return
        tools = _tools(job.options.get("batch_docs"))
        outcome = step(session, job, tools)
    if outcome == MORE:
        reindex.delay(job_id)  # a new message: ingest tasks queued meanwhile run first
    elif outcome == SWAPPED:
        with session_scope(runtime.sql_url()) as session:
            dropped = cleanup(session, tools.layout, tools.keep_retired)
        if dropped:
            log.info("dropped retired index versions %s", ", ".join(dropped))


def _guard_build(job_id: str) -> None:
    """A quantised build is judged against fp32 for every tenant with chunks before any of its writes (so before
    its swap); a refusal fails the job and leaves the build unswapped. The figures, stored under the build's name,
    are what ingest reads once it is live. Once passed, the job notes it, so later steps skip the tenants' scan."""
    from sqlalchemy import select

    from pipeline.encoders import guard, split
    from pipeline.store.models import IndexVersion, Job, JobState

    with session_scope(runtime.sql_url()) as session:
        job = session.get(Job, job_id)
        if job is None or job.state in JobState.FINAL or (job.options or {}).get("guarded"):
            return  # an ended job: the step finds that out itself
        name = (job.options or {}).get("index")
        build = session.scalar(select(IndexVersion).where(IndexVersion.name == name)) if name else None
        if build is None or build.state != "building":
            return
        tools = _tools()
        variant = tools.variant_of(build)
        if split(variant)[1] == "none":
            return
        index, model_path, tenants = build.name, tools.model_of(build)[0], guard.tenants_with_chunks(session)
    runtime.judge_encoder(index, model_path, variant, tenants, building=True)
    with session_scope(runtime.sql_url()) as session:
        job = session.get(Job, job_id)
        job.options = {**(job.options or {}), "guarded": True}  # reassigned: JSON columns track replacement only


@app.task(name=REINDEX_SCHEDULED, ignore_result=True)
def reindex_scheduled() -> str | None:
    """Beat's reindex: builds only when the configuration hash changed, else the job notes "no change"."""
    from pipeline.reindex import active_reindex_job, create_reindex_job

    with session_scope(runtime.sql_url()) as session:
        if active_reindex_job(session):
            return None  # one at a time; the next tick looks again
        job_id = create_reindex_job(session, {"action": "build", "reason": "scheduled"}).id
    reindex.delay(job_id)
    return job_id


@app.task(name=REINDEX_CRON_TICK, ignore_result=True)
def reindex_cron_tick() -> str | None:
    """Beat's look at DOCPIPE_REINDEX_CRON: a reindex job once per slot. The slot is taken in SQL with the job's
    creation, so a restarted beat neither repeats it nor forgets one missed meanwhile (it runs once, late); while
    a reindex runs, the slot stays due."""
    from pipeline.reindex import active_reindex_job, create_reindex_job
    from pipeline.schedule import claim_slot
    from pipeline.types import utcnow
    from workers.app import reindex_cron

    cron = reindex_cron(get_settings())
    with session_scope(runtime.sql_url()) as session:
        if active_reindex_job(session) or not claim_slot(session, "reindex", cron, utcnow()):
            return None
        job_id = create_reindex_job(session, {"action": "build", "reason": f"cron {cron.expr} ({cron.tz})"}).id
    reindex.delay(job_id)
    return job_id


@app.task(bind=True, base=JobTask, name=VERIFY_INDEX)
def verify_index(self, job_id: str) -> None:
    """A verify job: compare the live index with SQL (one tenant or all), repair when the job asks."""
    from pipeline.reindex.verify import record_result, run_verify

    with session_scope(runtime.sql_url()) as session:
        job = runtime.open_job(session, job_id)
        if job is None:
            return
        opts = job.options or {}
        tools = _tools()
        result = run_verify(
            session,
            tools.layout,
            opts.get("tenant"),
            tools if opts.get("repair") else None,
            get_settings().reindex.verify_samples,
        )
        record_result(job, result)
        outcome = job.options.get("outcome")
    if result.drift or result.unhashed:
        log.warning("index verify %s: %s", job_id, outcome)


def _send_verify(reason: str, starts: dict | None = None) -> str | None:
    from pipeline.reindex.verify import active_verify_job, create_verify_job

    with session_scope(runtime.sql_url()) as session:
        if active_verify_job(session):
            return None  # one at a time; the next tick looks again
        job_id = create_verify_job(session, None, True, reason, server_starts=starts or {}).id
    verify_index.delay(job_id)
    return job_id


@app.task(name=VERIFY_SCHEDULED, ignore_result=True)
def verify_scheduled() -> str | None:
    """Beat's verify of every tenant, with repair (DOCPIPE_REINDEX_VERIFY_EVERY_SECONDS)."""
    from pipeline.reindex.verify import server_starts

    return _send_verify("scheduled", server_starts(runtime.es()))


@app.task(name=VERIFY_AFTER_RESTART, ignore_result=True)
def verify_after_restart() -> str | None:
    """Beat's restart check: a node that started after the last full verify may have lost acknowledged
    writes, so a verify with repair follows (DOCPIPE_REINDEX_VERIFY_RESTART_CHECK_SECONDS)."""
    from pipeline.reindex.verify import restarted_since_last_verify, server_starts

    starts = server_starts(runtime.es())
    with session_scope(runtime.sql_url()) as session:
        if not restarted_since_last_verify(session, starts):
            return None
    return _send_verify("Elasticsearch restarted", starts)
