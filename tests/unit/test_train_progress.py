"""The training progress writer on a real (SQLite) schema: throttled heartbeats, history of every
evaluation, resumed runs, the lease renewed by each write, and a stop once the job has ended."""

from datetime import timedelta

import pytest

from pipeline.jobs import lease
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models import Job, JobState, utcnow
from pipeline.train.progress import LeaseLost, ProgressWriter
from pipeline.train.trainer import Cancelled

EVERY = 5.0


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def job_id(url):
    with session_scope(url) as s:
        job = repo.create_job(s, "t1", ["train.csv"], kind="train")
        job.state = JobState.RUNNING
        return job.id


def _writer(url, job_id, run="concat", clock=None, owner="me:1") -> ProgressWriter:
    return ProgressWriter(lambda: session_scope(url), job_id, run, EVERY, owner, 30.0, clock or Clock())


def _job(url, job_id) -> Job:
    with session_scope(url) as s:
        job = s.get(Job, job_id)
        s.expunge(job)
        return job


def test_heartbeats_and_plain_steps_are_throttled_checkpoints_are_not(url, job_id):
    clock = Clock()
    write = _writer(url, job_id, clock=clock)
    write("neighbours", {"examples_done": 1, "examples": 9})
    write("neighbours", {"examples_done": 2, "examples": 9})
    progress = _job(url, job_id).metrics["progress"]
    assert (progress["examples_done"], progress["phase"], progress["run"]) == (1, "neighbours", "concat")
    write("step", {"step": 4, "checkpointed": True})
    assert _job(url, job_id).metrics["progress"]["step"] == 4
    write("step", {"step": 5})
    assert _job(url, job_id).metrics["progress"]["step"] == 4
    clock.now += EVERY
    write("step", {"step": 6})
    progress = _job(url, job_id).metrics["progress"]
    assert progress["step"] == 6 and progress["phase"] == "training" and progress["examples_done"] == 1


def test_every_evaluation_joins_the_runs_history_and_resumes_are_listed(url, job_id):
    _writer(url, job_id, "concat")("eval", {"epoch": 1, "macro_f1": 0.5})
    _writer(url, job_id, "none")("resumed", {"step": 10, "total_steps": 40})
    _writer(url, job_id, "concat")("eval", {"epoch": 2, "macro_f1": 0.7})
    metrics = _job(url, job_id).metrics
    assert [e["epoch"] for e in metrics["history"]["concat"]] == [1, 2]
    assert "none" not in metrics["history"]
    assert metrics["resumed"] == [{"run": "none", "step": 10}]
    assert metrics["progress"]["eval"] == {"epoch": 2, "macro_f1": 0.7}


def test_each_write_renews_the_lease(url, job_id):
    clock = Clock()
    write = _writer(url, job_id, clock=clock)
    write("heartbeat", {"evaluated": 1})
    first = _job(url, job_id)
    assert first.lease_owner == "me:1" and first.lease_expires_at is not None
    clock.now += EVERY
    write("heartbeat", {"evaluated": 2})
    assert _job(url, job_id).lease_expires_at > first.lease_expires_at


def test_a_cancelled_or_deleted_job_stops_the_run(url, job_id):
    with session_scope(url) as s:
        s.get(Job, job_id).state = JobState.CANCELLED
    with pytest.raises(Cancelled):
        _writer(url, job_id)("heartbeat", {})
    with pytest.raises(Cancelled):
        _writer(url, "no-such-job")("heartbeat", {})


def test_a_job_another_live_worker_took_over_stops_this_run(url, job_id):
    with session_scope(url) as s:
        assert lease.claim(s.get(Job, job_id), "other:2", 30.0, utcnow() + timedelta(seconds=5), lambda _o: False)
    with pytest.raises(LeaseLost):
        _writer(url, job_id, owner="me:1")("eval", {"epoch": 1})
    assert "history" not in _job(url, job_id).metrics
