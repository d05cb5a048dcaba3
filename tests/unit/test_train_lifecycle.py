"""A training job's model row and job row move together, on a real (SQLite) schema: ready and succeeded
with the metrics, failed together with one reason, and a job that ended meanwhile abandons its model."""

from pathlib import Path

import pytest

from pipeline.jobs import lease
from pipeline.store import model_registry, repo
from pipeline.store.db import session_scope
from pipeline.store.models import Job, JobState
from pipeline.train import lifecycle
from pipeline.train.data import Examples
from pipeline.train.job import TrainingJob, TrainRequest

RESULT = {"metrics": {"accuracy": 0.8, "macro_f1": 0.75}, "best_epoch": 2, "examples_per_s": 10.0, "steps": 12}


@pytest.fixture
def job_id(url):
    with session_scope(url) as s:
        job = repo.create_job(s, "t1", ["train.csv"], kind="train")
        job.state = JobState.RUNNING
        assert lease.claim(job, "me:1", 30.0)
        return job.id


def _work(tmp_path: Path) -> TrainingJob:
    work = TrainingJob(TrainRequest("train.csv", "text", "label", task="topic"), "t1", tmp_path / "w", "/models/base")
    work.examples = Examples(["a", "b", "c"], ["x", "y", "x"], [None] * 3, [None] * 3, ["x", "y"])
    work.train_rows, work.held_rows = [0, 1], [2]
    return work


def _started(url, job_id, work):
    with session_scope(url) as s:
        return lifecycle.start_model(s, job_id, work, work.examples).id


def test_a_finished_run_makes_the_model_ready_and_the_job_succeeded(url, job_id, tmp_path):
    work = _work(tmp_path)
    model_id = _started(url, job_id, work)
    with session_scope(url) as s:
        assert lifecycle.complete(s, job_id, work, {"none": RESULT})
    with session_scope(url) as s:
        job, model = s.get(Job, job_id), model_registry.get_model(s, model_id)
        assert (model.status, model.labels, model.artefact_path) == ("ready", ["x", "y"], str(work.model_dir))
        assert model.metrics["baseline"]["macro_f1"] == 0.75 and not model.live
        assert (job.state, job.total, job.done) == (JobState.SUCCEEDED, 3, 3)
        assert job.metrics["result"]["model_id"] == model_id
        assert job.metrics["runs"] == {"none": {k: v for k, v in RESULT.items() if k != "metrics"}}
        assert job.lease_owner is None


def test_a_failure_marks_model_and_job_failed_with_one_reason(url, job_id, tmp_path):
    model_id = _started(url, job_id, _work(tmp_path))
    with session_scope(url) as s:
        lifecycle.fail(s, job_id, "label column 'label' is empty")
    with session_scope(url) as s:
        job, model = s.get(Job, job_id), model_registry.get_model(s, model_id)
        assert (job.state, job.error) == (JobState.FAILED, "label column 'label' is empty")
        assert (model.status, model.error) == ("failed", "label column 'label' is empty")


def test_a_job_cancelled_during_the_run_abandons_its_model(url, job_id, tmp_path):
    work = _work(tmp_path)
    model_id = _started(url, job_id, work)
    with session_scope(url) as s:
        s.get(Job, job_id).state = JobState.CANCELLED
    with session_scope(url) as s:
        assert not lifecycle.complete(s, job_id, work, {"none": RESULT})
    with session_scope(url) as s:
        job, model = s.get(Job, job_id), model_registry.get_model(s, model_id)
        assert job.state == JobState.CANCELLED
        assert (model.status, model.error) == ("failed", lifecycle.ABANDONED)
