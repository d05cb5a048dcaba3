"""A worker killed with SIGKILL in the middle of a job loses nothing: after a restart the job completes
and the index holds every chunk exactly once."""
from __future__ import annotations

import time

import pytest

from pipeline.index import count_chunks
from pipeline.store import repo
from pipeline.store.db import session_scope
from tests.fixtures import article

pytestmark = pytest.mark.integration


def test_sigkilled_workers_resume_and_index_each_chunk_once(stack, tmp_path):
    tenant = "t-crash"
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(48):
        (folder / f"doc{i:02d}.txt").write_text(article(1000 + i, sentences=20))
    job_id = stack.submit([folder], tenant)

    deadline = time.monotonic() + 180
    while True:  # kill both workers once indexing has started but long before the end
        job = stack.job(job_id)
        if job.done > 0:
            break
        assert job.state not in ("succeeded", "partial", "failed"), "job ended before the kill"
        assert time.monotonic() < deadline, "indexing never started"
        time.sleep(0.05)
    assert job.done < 48
    stack.kill_worker("worker-gpu")
    stack.kill_worker("worker-ingest")
    killed_at = stack.job(job_id)
    assert killed_at.state == "running"

    stack.start_worker("worker-ingest")
    stack.start_worker("worker-gpu")
    job = stack.wait(job_id, timeout=300)
    assert (job.state, job.done, job.failed, job.total) == ("succeeded", 48, 0, 48)

    es, alias = stack.es(), f"{stack.settings().index_prefix}-read"
    es.indices.refresh(index=alias)
    in_es = count_chunks(es, alias, tenant=tenant)
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
        assert in_es == repo.chunk_total(session, tenant) == job.chunks
    distinct = es.search(index=alias, size=0, query={"term": {"tenant": tenant}},
                         aggs={"ids": {"cardinality": {"field": "chunk_id"}}})["aggregations"]["ids"]["value"]
    assert distinct == in_es
