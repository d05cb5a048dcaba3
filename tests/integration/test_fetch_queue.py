"""Feed fetches run on their own queue (`fetch`, a threads pool): a feed that hangs never delays ingestion."""

from __future__ import annotations

import threading
import time

import pytest

from pipeline.sources import catalog
from pipeline.types import utcnow
from tests.feedserver import FeedServer, rss
from tests.fixtures import article
from tests.sources_support import add, db, source, wait_run

pytestmark = pytest.mark.integration


def test_a_hanging_feed_does_not_delay_an_ingest_job_sent_after_it(stack, tmp_path):
    from workers.app import configure
    from workers.tasks_sources import run_source

    tenant = "t-fetch-queue"
    release = threading.Event()
    body = rss([{"title": "Late", "link": "https://late.example/1", "description": article(7100)}])

    def hang_until_released(handler) -> None:
        release.wait(120)
        handler._send(200, {"Content-Type": "application/rss+xml"}, body)

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        (folder / f"doc{i}.txt").write_text(article(7000 + i, sentences=5))
    with FeedServer() as server:
        sid = add(stack, "feed", server.route("/hang.xml", handler=hang_until_released), tenant, timeout=120)
        configure(stack.settings())
        with db(stack) as s:
            token = catalog.claim(s, sid, utcnow(), 600, force=True)
        run_source.delay(sid, token)
        deadline = time.monotonic() + 120
        while not server.hits("/hang.xml"):  # the fetch has begun and now waits on the feed
            assert time.monotonic() < deadline, "the feed was never fetched"
            time.sleep(0.1)

        job = stack.run_job([folder], tenant, timeout=240)  # sent after the fetch, while it hangs
        assert (job.state, job.done) == ("succeeded", 3)
        assert source(stack, sid).running_since is not None  # the feed's run is still in its fetch

        release.set()
        src = wait_run(stack, sid, token)
    assert src.last_error is None and src.last_job_id
    assert stack.wait(src.last_job_id).state == "succeeded"
