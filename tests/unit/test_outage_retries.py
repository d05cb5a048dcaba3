"""How long a job's task waits out a service that is away: retries with backoff doubling from 2 s up to a minute,
without jitter, until the waits add up to DOCPIPE_WORKER_OUTAGE_SECONDS (tests/integration/test_outage.py runs it)."""

from __future__ import annotations

import pytest

from pipeline.config import get_settings
from workers.runtime import retries_within


def _waits(retries: int) -> list[int]:
    return [min(60, 2 * 2**n) for n in range(retries)]


@pytest.mark.parametrize("seconds", [0, 1, 2, 3, 62, 63, 900, 3600])
def test_the_retries_wait_at_least_the_window_and_no_retry_more(seconds):
    n = retries_within(seconds)
    assert sum(_waits(n)) >= seconds
    assert n == 0 or sum(_waits(n - 1)) < seconds
    assert _waits(7) == [2, 4, 8, 16, 32, 60, 60]


def test_job_tasks_take_their_retries_from_the_setting(monkeypatch):
    from workers.tasks_ingest import index_files, read_files

    monkeypatch.setenv("DOCPIPE_WORKER_OUTAGE_SECONDS", "62")
    get_settings.cache_clear()
    try:
        assert index_files.max_retries == read_files.max_retries == 5  # the old fixed count: a minute in all
        assert not index_files.retry_jitter  # with jitter the waits were a random part of it (31 s on average)
        monkeypatch.setenv("DOCPIPE_WORKER_OUTAGE_SECONDS", "900")
        get_settings.cache_clear()
        assert index_files.max_retries == 19
    finally:
        monkeypatch.delenv("DOCPIPE_WORKER_OUTAGE_SECONDS")
        get_settings.cache_clear()


def test_a_retry_is_noted_on_its_job(tmp_path):
    from migrations.runner import upgrade
    from pipeline.store import repo
    from pipeline.store.db import session_scope

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    with session_scope(url) as s:
        job = repo.create_job(s, "t", ["/x"])
        job.metrics = {"embed": {"seconds": 1.5, "items": 3}}  # what a job keeps there besides stays
        repo.note_retry(s, job, 2, "ServiceUnavailable: away")
        repo.note_retry(s, job, 4, "BulkIndexError: " + "x" * 500)
        job_id = job.id
    with session_scope(url) as s:
        job = repo.get_job(s, job_id)
        retries = job.metrics["retries"]
        assert (retries["count"], retries["seconds"], len(retries["last"])) == (2, 6.0, 300)
        assert job.metrics["embed"] == {"seconds": 1.5, "items": 3} and job.heartbeat_at is not None


def test_a_task_the_main_process_cancelled_notes_nothing(monkeypatch):
    """After a lost broker connection the worker's main process cancels an acks-late task and calls on_retry with
    Celery's Retry: it must not open the database (a child forked later would share that connection, and every
    worker then waited on "database is locked"); a real retry is noted."""
    from celery.exceptions import Retry

    from pipeline.errors import ServiceUnavailable
    from workers.tasks_ingest import read_files

    noted = []
    monkeypatch.setattr("workers.runtime.session_scope", lambda url: noted.append(url) or _Refused())
    read_files.on_retry(Retry("cancelled by Celery"), "task-id", ("job-1", [1]), {}, None)
    assert noted == []
    read_files.on_retry(ServiceUnavailable("away"), "task-id", ("job-1", [1]), {}, None)
    assert len(noted) == 1


class _Refused:
    def __enter__(self):
        raise RuntimeError("the test's database is away")

    def __exit__(self, *exc):
        return False
