"""SIGKILL of the ingest worker, or of the gpu worker, at a random moment of an ingest; the worker is started
again and the job must end succeeded with every document indexed once. Recovery: from the restart (the worker
still has to boot) to the job's end."""

from __future__ import annotations

import random
import time
import uuid

import pytest

from tests.chaos.support import (
    DOCS,
    ROUNDS,
    WORKER_ENV,
    Round,
    check,
    corpus,
    indexing,
    kill_at_random,
    reading,
    record,
    verify_and_repair,
    wait_final,
)

RUN = uuid.uuid4().hex[:6]
KILLS = {"worker-ingest": ("ingest-worker-sigkill", reading, 1), "worker-gpu": ("gpu-worker-sigkill", indexing, 2)}


@pytest.mark.parametrize("worker", list(KILLS))
@pytest.mark.parametrize("round_no", range(1, ROUNDS + 1))
def test_a_sigkilled_worker_loses_and_duplicates_nothing(chaos, stack, tmp_path, worker, round_no):
    scenario, started, salt = KILLS[worker]
    rng = random.Random(f"{RUN}-{worker}-{round_no}")
    tenant = f"chaos-{salt}-{round_no}-{RUN}"
    paths = corpus(tmp_path / "docs", DOCS, seed=100_000 * salt + 1_000 * round_no)
    rec = Round(scenario, round_no, len(paths), faults=1)
    try:
        job_id = stack.submit(paths, tenant)
        rec.notes["kill_after_s"] = kill_at_random(
            stack, job_id, started, rng, lambda: stack.kill_worker(worker), within=2.0
        )
        stack.start_worker(worker, **WORKER_ENV)
        job, rec.recovery_seconds = wait_final(stack, job_id, time.monotonic())
        assert job.state == "succeeded", job.error
        check(stack, rec, job_id, tenant, paths)
        verify_and_repair(stack, rec, tenant, repair=False)
    finally:
        if worker not in stack.workers:
            stack.start_worker(worker, **WORKER_ENV)
        record(rec, chaos)
