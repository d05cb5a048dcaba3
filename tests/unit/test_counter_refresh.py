"""A task recomputes its job's counters at most every PROGRESS_SECONDS while it works, and always at its end: the
recount grows with the job (migration 0019 indexes what it groups by), a recount per file made large jobs
quadratic."""

from __future__ import annotations

from workers import tasks_ingest
from workers.tasks_ingest import PROGRESS_SECONDS, Progress


def test_progress_is_due_after_the_interval_or_at_the_end(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(tasks_ingest.time, "monotonic", lambda: now[0])
    progress = Progress()
    assert not progress.due()  # a file read right after the task began
    assert progress.due(last=True)  # the task's last file: the counters are exact when it ends
    now[0] += PROGRESS_SECONDS / 2
    assert not progress.due()
    now[0] += PROGRESS_SECONDS / 2
    assert progress.due()
    assert not progress.due()  # the interval starts again from the last recount
