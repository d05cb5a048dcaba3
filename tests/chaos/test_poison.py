"""A file that kills its reader every time (the test-only hook in tests/workerhooks exits the process as an OOM
kill would): after DOCPIPE_WORKER_MAX_DELIVERIES takes it is a `worker_lost` dead letter, every other document
is indexed once, and the job ends `partial`. Recovery: from the first death to the job's end."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from tests.chaos.support import (
    DOCS,
    WORKER_ENV,
    Round,
    check,
    corpus,
    files,
    record,
    verify_and_repair,
    wait_final,
    wait_for,
)

RUN = uuid.uuid4().hex[:6]
HOOKS = str(Path(__file__).parents[1] / "workerhooks")
MARK = "-poison"


def test_a_poison_file_becomes_a_worker_lost_dead_letter_and_the_rest_is_indexed(chaos, stack, tmp_path):
    from tests.chaos.conftest import restart

    tenant = f"chaos-poison-{RUN}"
    paths = corpus(tmp_path / "docs", DOCS, seed=700_000, poison=MARK)
    hooked = {"PYTHONPATH": os.pathsep.join(filter(None, [HOOKS, os.environ.get("PYTHONPATH")]))}
    restart(stack, "worker-ingest", **WORKER_ENV, DOCPIPE_TEST_POISON_MARK=MARK, **hooked)
    rec = Round("poison-file", 1, len(paths))
    try:
        job_id = stack.submit(paths, tenant)
        poison = lambda: [f for f in files(stack, job_id) if MARK in f.path]  # noqa: E731
        wait_for(lambda: any(f.deliveries for f in poison()), "the poison file was never taken", 120)
        job, rec.recovery_seconds = wait_final(stack, job_id, time.monotonic(), timeout=240)
        [pf] = poison()
        rec.faults = pf.deliveries
        assert (job.state, job.failed, job.total) == ("partial", 1, len(paths)), job.error
        check(stack, rec, job_id, tenant, paths)
        assert rec.notes["letters"] == ["worker_lost"]
        assert (pf.status, pf.deliveries) == ("failed", stack.settings().worker.max_deliveries)
        verify_and_repair(stack, rec, tenant, repair=False)
    finally:
        restart(stack, "worker-ingest", **WORKER_ENV)
        record(rec, chaos)
