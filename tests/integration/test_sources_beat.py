"""A real `celery beat` process drives the sources: a due source runs, and runs once."""

from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import select

from cli.localstack.processes import stop_pid
from pipeline.store.models import Job
from tests.feedserver import FeedServer, rss
from tests.fixtures import article
from tests.sources_support import add, db, source

pytestmark = pytest.mark.integration


def _ticks_sent(log) -> int:
    return log.read_text().count("Sending due task docpipe-sources-tick") if log.exists() else 0


def test_beat_runs_a_due_source_once(stack, tmp_path):
    from cli.localstack.launcher import start_beat
    from pipeline.config import Settings

    tenant = "t-beat"
    data_dir = tmp_path / "beat"  # its own schedule and pid file, next to the shared stack
    env = {**os.environ, **stack.env, "DOCPIPE_DATA_DIR": str(data_dir), "DOCPIPE_SOURCES_TICK_SECONDS": "1"}
    with FeedServer() as server:
        url = server.route(
            "/beat.xml", body=rss([{"title": "Beat", "link": "https://beat.example/1", "description": article(2500)}])
        )
        sid = add(stack, "feed", url, tenant, every=3600)  # due now, then not for an hour
        settings = Settings(data_dir=data_dir)
        data_dir.mkdir()
        beat = start_beat(settings, env)
        log = data_dir / "logs" / "beat.log"
        try:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not (
                source(stack, sid).last_job_id and stack.job(source(stack, sid).last_job_id).state == "succeeded"
            ):
                assert beat.poll() is None, log.read_text()
                time.sleep(0.5)
            job_id = source(stack, sid).last_job_id
            assert job_id and stack.job(job_id).state == "succeeded"
            seen = _ticks_sent(log)
            while time.monotonic() < deadline and _ticks_sent(log) < seen + 3:  # three more ticks go by
                time.sleep(0.5)
            assert _ticks_sent(log) >= seen + 3
        finally:
            stop_pid(beat.pid)
            beat.wait()
        time.sleep(2)  # the worker takes the last ticks off the queue (they expire after a second)
        with db(stack) as s:
            jobs = [j for j in s.scalars(select(Job).where(Job.tenant == tenant))]
        assert [j.id for j in jobs] == [job_id] and jobs[0].kind == "feed" and jobs[0].done == 1
        assert len(server.hits("/beat.xml")) == 1
        assert source(stack, sid).failures == 0
