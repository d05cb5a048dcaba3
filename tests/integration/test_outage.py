"""A service that is away for a while does not fail a job: its tasks wait it out with backoff for
DOCPIPE_WORKER_OUTAGE_SECONDS, touching the job as they retry. Here Elasticsearch blocks writes to the live index
(as it does when a disk passes the flood-stage watermark, or an operator sets index.blocks.write) while the real gpu
worker indexes a job; the job waits, then ends `succeeded` once the block is lifted. Before, the 403 was taken for
refused credentials and failed the job at once, and an unreachable cluster failed it after about a minute."""

from __future__ import annotations

import time

import pytest

from pipeline.store.db import session_scope
from pipeline.store.models import JobFile, JobState
from tests.fixtures import article

pytestmark = pytest.mark.integration


def test_a_job_waits_out_a_write_block_and_succeeds_once_it_is_lifted(stack, tmp_path):
    first = tmp_path / "first.txt"
    first.write_text(article(7099, sentences=6))
    assert stack.run_job([first], "t-block").state == JobState.SUCCEEDED  # the live index exists, the model is loaded
    es = stack.es()
    (physical,) = es.indices.get_alias(name=f"{stack.settings().index_prefix}-write")
    folder = tmp_path / "blocked"
    folder.mkdir()
    for i in range(3):
        (folder / f"b{i}.txt").write_text(article(7100 + i, sentences=6))

    es.indices.put_settings(index=physical, settings={"index.blocks.write": True})
    try:
        job_id = stack.submit([folder], "t-block")
        deadline = time.monotonic() + 120
        while not _read(stack, job_id):  # so that its index task has begun meeting the block
            assert time.monotonic() < deadline, f"the job was never read: {stack.job(job_id).state}"
            time.sleep(0.3)
        time.sleep(1)
        read_at = stack.job(job_id).heartbeat_at
        time.sleep(8)  # the index task's first retries (after 2 s, then 4 s) meet the block
        job = stack.job(job_id)
        assert (job.state, job.done, job.failed, job.error) == (JobState.RUNNING, 0, 0, None)
        assert job.heartbeat_at > read_at  # touched as it retried: the revive sweep leaves it alone
        retries = job.metrics["retries"]  # what `docpipe job` reports of the wait
        assert retries["count"] >= 2 and retries["seconds"] >= 6 and "blocks writes" in retries["last"]
    finally:
        es.indices.put_settings(index=physical, settings={"index.blocks.write": None})

    job = stack.wait(job_id, timeout=120)
    assert (job.state, job.done, job.failed) == (JobState.SUCCEEDED, 3, 0)


def _read(stack, job_id: str) -> bool:
    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
        statuses = {f.status for f in session.query(JobFile).filter_by(job_id=job_id)}
        return statuses == {"done"}
