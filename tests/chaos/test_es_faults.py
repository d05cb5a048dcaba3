"""Elasticsearch answering 429 and 5xx (tests/chaos/esproxy.py, a proxy before the embedded server that the gpu
worker writes through): refusals that pass are retried and the job succeeds; chunks refused every time end as
dead letters with the reason, or the job says it failed, and nothing half-written stays in the index."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from tests.chaos.esproxy import FaultProxy
from tests.chaos.support import DOCS, WORKER_ENV, Round, check, corpus, record, verify_and_repair, wait_final

RUN = uuid.uuid4().hex[:6]
MARK = "-refused"


@pytest.fixture
def proxied(chaos, stack, noida):
    """The gpu worker writes through a fault proxy for the test (its helper backs off once, not five times, and
    its tasks wait out refusals for 30 s, not 15 min, so that the refusals that never pass reach the last retry
    within the test's time)."""
    from tests.chaos.conftest import restart

    proxy = FaultProxy(noida.elasticsearch_url, seed=12)
    restart(
        stack,
        "worker-gpu",
        **WORKER_ENV,
        DOCPIPE_ELASTICSEARCH_URL=proxy.url,
        DOCPIPE_BULK_MAX_RETRIES="1",
        DOCPIPE_WORKER_OUTAGE_SECONDS="30",
    )
    try:
        yield proxy
    finally:
        restart(stack, "worker-gpu", **WORKER_ENV)
        proxy.close()


def _run(
    chaos, stack, paths: list[Path], scenario: str, round_no: int, proxy: FaultProxy
) -> tuple[Round, object, str, str]:
    tenant = f"chaos-es-{round_no}-{RUN}"
    rec = Round(scenario, round_no, len(paths))
    job_id = stack.submit(paths, tenant)
    job, _ = wait_final(stack, job_id, time.monotonic(), timeout=240)
    rec.faults = proxy.injected["requests"] + proxy.injected["items"]
    rec.notes["injected"] = dict(proxy.injected)
    return rec, job, job_id, tenant


def test_429s_and_5xx_that_pass_are_retried_and_the_job_succeeds(chaos, stack, proxied, tmp_path):
    proxied.request_rate, proxied.item_rate = 0.3, 0.1
    paths = corpus(tmp_path / "docs", DOCS, seed=500_000)
    rec, job, job_id, tenant = _run(chaos, stack, paths, "es-429-5xx-transient", 1, proxied)
    try:
        assert rec.faults > 0, "the proxy refused nothing: the round tested nothing"
        assert job.state == "succeeded", job.error
        check(stack, rec, job_id, tenant, paths)
        verify_and_repair(stack, rec, tenant, repair=False)
    finally:
        record(rec, chaos)


def test_chunks_refused_every_time_end_as_dead_letters_and_the_rest_is_indexed(chaos, stack, proxied, tmp_path):
    """The index task's retries are not deliveries (no worker died); on its last try the document Elasticsearch
    still refuses becomes an `index_rejected` dead letter, its written chunks are deleted, and the job ends partial."""
    proxied.always_refuse, proxied.always_status = MARK, 429
    paths = corpus(tmp_path / "docs", DOCS, seed=600_000, poison=MARK)
    rec, job, job_id, tenant = _run(chaos, stack, paths, "es-429-persistent", 2, proxied)
    try:
        assert proxied.injected["items"] > 0
        refused = [p for p in paths if MARK in p.name]
        rec.notes["error"] = job.error
        assert job.state == "partial", (job.state, job.error)
        check(stack, rec, job_id, tenant, paths)
        assert rec.dead_letters == len(refused)
        verify_and_repair(stack, rec, tenant, repair=False)
    finally:
        record(rec, chaos)
