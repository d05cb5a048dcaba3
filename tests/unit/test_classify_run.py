"""The accounts and the finish of a classify job, on a real (SQLite) schema: batches add up, a batch that
labels nothing fails the job, refused chunk updates end it partial, and no live model is a clear error."""

import pytest

from pipeline.errors import PermanentError
from pipeline.infer.classify_job import ClassifyReport
from pipeline.infer.classify_run import ClassifySettings, advance, finish, pin_model, record_batch
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models import Document, Job, JobState
from pipeline.store.models_ml import ModelRecord, Prediction

CFG = ClassifySettings("docpipe-chunks", "/models/none", 128, True)


@pytest.fixture
def job_id(url):
    with session_scope(url) as s:
        job = repo.create_job(s, "t1", [], kind="classify", options={"task": "topic"})
        job.state = JobState.RUNNING
        return job.id


def _label(url, job_id, *doc_ids):
    """Predictions of the job for new documents (what classify_documents writes)."""
    with session_scope(url) as s:
        if s.get(ModelRecord, "m1") is None:
            s.add(ModelRecord(id="m1", tenant="t1", task="topic", base_model="b", data_hash="h", status="ready"))
        for d in doc_ids:
            s.add(
                Document(
                    id=d, tenant="t1", source=d, content_type="text", text="x", content_hash="h", status="indexed",
                    cluster_id=d,
                )
            )  # fmt: skip
            s.flush()
            s.add(Prediction(document_id=d, task="topic", tenant="t1", model_id="m1", job_id=job_id, label="a",
                             score=1.0, content_hash="h"))  # fmt: skip


def test_batches_add_up_in_the_jobs_accounts(url, job_id):
    with session_scope(url) as s:
        job = s.get(Job, job_id)
        record_batch(job, ClassifyReport(3, 7, [], {"real_tokens": 60, "padded_tokens": 80}), 1.25)
        record_batch(job, ClassifyReport(2, 3, [{"id": "c1"}], {"real_tokens": 30, "padded_tokens": 40}), 0.5)
    with session_scope(url) as s:
        metrics = s.get(Job, job_id).metrics
    assert metrics["classify"] == {
        "documents": 5,
        "chunks": 10,
        "seconds": 1.75,
        "real_tokens": 90,
        "padded_tokens": 120,
        "padding_waste": 0.25,
    }
    assert metrics["es_failures"] == 1


def test_a_batch_counts_its_labelled_documents_and_one_that_labels_none_fails(url, job_id):
    _label(url, job_id, "d1", "d2")
    with session_scope(url) as s:
        advance(s, s.get(Job, job_id), 2)
    with session_scope(url) as s:
        job = s.get(Job, job_id)
        assert job.done == 2
        with pytest.raises(PermanentError, match="2 document"):
            advance(s, job, 2)


def test_the_job_succeeds_with_its_labelled_count(url, job_id):
    _label(url, job_id, "d1", "d2", "d3")
    with session_scope(url) as s:
        finish(s, s.get(Job, job_id))
    with session_scope(url) as s:
        job = s.get(Job, job_id)
        assert (job.state, job.done, job.failed, job.error) == (JobState.SUCCEEDED, 3, 0, None)
        assert job.finished_at is not None


def test_refused_chunk_updates_end_the_job_partial_with_their_count(url, job_id):
    _label(url, job_id, "d1")
    with session_scope(url) as s:
        job = s.get(Job, job_id)
        record_batch(job, ClassifyReport(1, 2, [{"id": "c1"}, {"id": "c2"}], {}), 0.1)
        finish(s, job)
    with session_scope(url) as s:
        job = s.get(Job, job_id)
        assert (job.state, job.done, job.failed) == (JobState.PARTIAL, 1, 2)
        assert "2 chunk update(s) failed" in job.error


def test_no_live_model_is_an_error_that_says_what_to_do(url, job_id):
    with session_scope(url) as s:
        error = pin_model(s, None, s.get(Job, job_id), CFG, lambda path: None)
    assert "no live model for task 'topic' of tenant t1" in error and "docpipe models promote" in error


def test_the_live_model_and_index_are_pinned_once_with_the_scope_counted(url, job_id):
    _label(url, None, "d1", "d2")  # two indexed documents of the tenant, labelled by no job
    with session_scope(url) as s:
        model = s.get(ModelRecord, "m1")
        model.live, model.artefact_path = True, "/models/m1"
        for doc in s.query(Document):
            doc.chunk_count = 1
    with session_scope(url) as s:
        assert pin_model(s, None, s.get(Job, job_id), CFG, lambda path: None) is None
    with session_scope(url) as s:
        job = s.get(Job, job_id)
        assert job.options == {
            "task": "topic",
            "model_id": "m1",
            "artefact": "/models/m1",
            "index": "docpipe-chunks-read",  # no version recorded yet: the read alias
            "index_model": "/models/none",
        }
        assert job.total == 2
