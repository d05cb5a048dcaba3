"""Counters of overlapping jobs: each document is indexed by one job, the others find it unchanged; a job's total
is counted before its first document is indexed and stays as counted."""

from __future__ import annotations

import json
import time

import pytest

from pipeline.store.models import JobState
from tests.fixtures import article

pytestmark = pytest.mark.integration


def _folder(tmp_path):
    folder = tmp_path / "same"
    folder.mkdir()
    for i in range(8):
        (folder / f"doc{i}.txt").write_text(article(40 + i))
    lines = [json.dumps({"id": f"rec-{n}", "title": f"Record {n}", "text": article(60 + n)}) for n in range(3)]
    (folder / "records.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "rows.csv").write_text(f'id,text\nrow-1,"{article(70)}"\nrow-2,"{article(71)}"\n')
    return folder, 8 + 3 + 2


def test_three_overlapping_jobs_index_each_document_once_and_keep_their_totals(stack, tmp_path):
    folder, documents = _folder(tmp_path)
    jobs = [stack.submit([folder], "t-overlap") for _ in range(3)]
    totals: dict[str, set[int]] = {j: set() for j in jobs}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        rows = [stack.job(j) for j in jobs]
        for job in rows:
            if job.state != JobState.QUEUED:
                totals[job.id].add(job.total)
        if all(job.state in JobState.FINAL for job in rows):
            break
        time.sleep(0.1)
    assert all(job.state == JobState.SUCCEEDED for job in rows), [(j.state, j.error) for j in rows]
    for job in rows:
        assert totals[job.id] == {documents}, f"job {job.id[:8]} showed totals {sorted(totals[job.id])}"
        assert job.done + job.unchanged + job.skipped + job.failed == job.total == documents
        assert job.failed == 0 and job.skipped == 0
    assert sum(job.done for job in rows) == documents, [(j.done, j.unchanged) for j in rows]


def test_a_read_task_leaves_exact_counters_as_it_ends(stack, tmp_path):
    """A task recounts at most once a second while it reads, and always at its last file: with nothing indexed
    yet (the gpu queue held), the job row already counts every file the read task took, the duplicates among them
    last in its order included. Each file's delivery is counted once."""
    from sqlalchemy import select

    from pipeline.store.db import session_scope
    from pipeline.store.models import JobFile

    folder = tmp_path / "read"
    folder.mkdir()
    for i in range(3):
        (folder / f"a{i}.txt").write_text(article(500 + i))
    for i in range(2):  # read after the a-files: exact copies, so duplicates
        (folder / f"z{i}.txt").write_text(article(500 + i))
    with stack.paused("worker-gpu", "gpu"):
        job_id = stack.submit([folder], "t-read-counters")
        deadline = time.monotonic() + 120
        while True:
            with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
                rows = list(s.execute(select(JobFile.status, JobFile.deliveries).where(JobFile.job_id == job_id)))
            if len(rows) == 5 and {status for status, _ in rows} == {"done"}:
                break
            assert time.monotonic() < deadline, f"the files were not read: {rows}"
            time.sleep(0.1)
        job = stack.job(job_id)
        assert (job.total, job.skipped, job.done, job.failed) == (5, 2, 0, 0)
        # each file's delivery counted once: the first in a transaction of its own, the others with the file before
        assert [deliveries for _, deliveries in rows] == [1] * 5
    assert stack.wait(job_id).state == JobState.SUCCEEDED
