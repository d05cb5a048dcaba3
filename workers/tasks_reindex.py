"""Reindex tasks (gpu queue): one step of a build or rollback per message, and beat's scheduled reindex."""

from __future__ import annotations

import logging
from functools import lru_cache

from pipeline.config import get_settings
from pipeline.store.db import session_scope
from workers import runtime
from workers.app import app
from workers.routing import REINDEX, REINDEX_SCHEDULED
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
