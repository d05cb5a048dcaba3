"""A gpu worker killed in the middle of a training job: the redelivered task resumes from the last
checkpoint (not from step 0) and the job finishes with a registered model."""

from __future__ import annotations

import time

import pytest

from tests.ml_support import docpipe_json, topic_rows, write_rows

pytestmark = pytest.mark.integration


def test_training_resumes_from_its_checkpoint_after_the_worker_is_killed(stack, tmp_path):
    data = write_rows(tmp_path / "train.csv", topic_rows(400, seed=5))
    code, rec = docpipe_json(
        "train",
        str(data),
        "--text-col",
        "text",
        "--label-col",
        "label",
        "--epochs",
        "1",
        "--max-length",
        "128",
        "--batch-size",
        "16",
        "--checkpoint-steps",
        "4",
        "--tenant",
        "t-resume",
    )
    assert code == 0 and rec["state"] in ("queued", "running")
    job_id = rec["id"]

    deadline = time.monotonic() + 300
    while True:  # kill once a checkpoint exists, long before the 20 steps are done
        job = stack.job(job_id)
        step = (job.metrics or {}).get("progress", {}).get("step", 0)
        if step >= 4:
            break
        assert job.state == "running" or job.state == "queued", job.error
        assert time.monotonic() < deadline, "training never reached its first checkpoint"
        time.sleep(0.2)
    stack.kill_worker("worker-gpu")
    assert stack.job(job_id).state == "running"
    stack.start_worker("worker-gpu")

    job = stack.wait(job_id, timeout=600)
    assert job.state == "succeeded", job.error
    resumed = job.metrics["resumed"]
    assert resumed and resumed[0]["run"] == "none" and resumed[0]["step"] >= 4
    run = job.metrics["runs"]["none"]
    assert run["resumed_from_step"] == resumed[-1]["step"] and run["steps"] == run["total_steps"] == 20
    model = job.metrics["result"]
    assert model["baseline"]["examples"] == 81  # 20% of each class (134, 133, 133 rows)
