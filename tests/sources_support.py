"""Helpers for the sources integration tests: add a source, run it through the real workers, wait."""

from __future__ import annotations

import time
from datetime import timedelta

from pipeline.index import count_chunks
from pipeline.sources import catalog
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models import Document, JobState
from pipeline.store.models_sources import Source
from pipeline.types import utcnow


def db(stack):
    return session_scope(stack.env["DOCPIPE_DATABASE_URL"])


def add(stack, kind: str, location: str, tenant: str, every: int = 3600, timeout: float | None = None) -> str:
    with db(stack) as s:
        return catalog.add_source(s, kind, location, every, tenant, timeout).id


def source(stack, sid: str) -> Source:
    with db(stack) as s:
        return s.get(Source, sid)


def run_now(stack, sid: str, timeout: float = 180):
    """Claim the source (as `docpipe ... run` does), run it on the worker, wait for it and its job.

    Returns (source row after the run, its new job or None)."""
    from workers.app import configure
    from workers.tasks_sources import run_source

    configure(stack.settings())
    with db(stack) as s:
        before = s.get(Source, sid).last_job_id
        token = catalog.claim(s, sid, utcnow(), 600, force=True)
    assert token, f"source {sid} is busy"
    run_source.delay(sid, token)
    src = wait_run(stack, sid, token, timeout)
    job = stack.wait(src.last_job_id, timeout) if src.last_job_id and src.last_job_id != before else None
    return src, job


def wait_run(stack, sid: str, token: str | None = None, timeout: float = 180) -> Source:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        src = source(stack, sid)
        if src.running_since is None and src.last_run_at is not None and (token is None or src.run_token == token):
            return src
        for name, proc in stack.workers.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}")
        time.sleep(0.3)
    raise AssertionError(f"source {sid} did not finish a run within {timeout}s")


def backoff_seconds(src: Source) -> float:
    return (catalog.aware(src.next_run_at) - catalog.aware(src.last_run_at)) / timedelta(seconds=1)


def documents(stack, tenant: str) -> dict[str, Document]:
    from sqlalchemy import select

    with db(stack) as s:
        return {d.source: d for d in s.scalars(select(Document).where(Document.tenant == tenant))}


def counts_agree(stack, tenant: str) -> int:
    """Chunks in Elasticsearch == chunks SQL says are indexed, for the tenant."""
    es, alias = stack.es(), f"{stack.settings().index_prefix}-read"
    es.indices.refresh(index=alias)
    in_es = count_chunks(es, alias, tenant=tenant)
    with db(stack) as s:
        in_sql = repo.chunk_total(s, tenant)
    assert in_es == in_sql
    return in_es


def chunks_of(stack, tenant: str, doc_id: str) -> int:
    es, alias = stack.es(), f"{stack.settings().index_prefix}-read"
    es.indices.refresh(index=alias)
    return count_chunks(es, alias, tenant=tenant, doc_id=doc_id)


def settled(job) -> bool:
    return job is not None and job.state in JobState.FINAL
