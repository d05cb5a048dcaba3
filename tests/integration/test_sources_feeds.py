"""Feeds end to end: a loopback HTTP server, real Celery workers, noida-db and SQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from pipeline.retrieve import search
from pipeline.types import document_id
from tests.feedserver import FeedServer, rss
from tests.fixtures import article, near_copy
from tests.sources_support import add, backoff_seconds, counts_agree, documents, run_now, source, wait_run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server():
    with FeedServer() as srv:
        yield srv


def _item(n: int, day: int, seed: int | None = None, link: str | None = None) -> dict:
    return {
        "title": f"Story {n}",
        "link": link or f"https://news.example/story/{n}",
        "description": article(seed if seed is not None else 1000 + n),
        "pubDate": f"Tue, {day:02d} Mar 2024 09:30:00 GMT",
    }


def test_new_items_are_indexed_with_published_times_and_a_304_creates_nothing(stack, server):
    tenant = "t-feed-new"
    items = [_item(1, 5), _item(2, 6), _item(3, 7)]
    url = server.route("/markets.xml", body=rss(items), etag='"v1"', headers={"Content-Type": "application/rss+xml"})
    sid = add(stack, "feed", url, tenant)
    src, job = run_now(stack, sid)
    assert src.failures == 0 and src.etag == '"v1"', src.last_error
    assert (job.kind, job.state, job.done, job.failed) == ("feed", "succeeded", 3, 0)
    docs = documents(stack, tenant)
    assert sorted(docs) == [f"https://news.example/story/{n}" for n in (1, 2, 3)]
    story2 = docs["https://news.example/story/2"]
    assert story2.status == "indexed" and story2.title == "Story 2"
    assert story2.published.replace(tzinfo=UTC) == datetime(2024, 3, 6, 9, 30, tzinfo=UTC)
    assert story2.meta["source_id"] == sid
    es, alias = stack.es(), f"{stack.settings().index_prefix}-read"
    hits = search(es, alias, tenant, article(1002)[:120], "bm25", 1)
    assert hits[0].source == "https://news.example/story/2"
    indexed = es.search(index=alias, query={"term": {"chunk_id": hits[0].chunk_id}})["hits"]["hits"][0]["_source"]
    assert indexed["published"].startswith("2024-03-06T09:30")
    chunks = counts_agree(stack, tenant)

    src, again = run_now(stack, sid)
    assert again is None and src.last_job_id == job.id and "304" in src.last_status
    assert server.hits("/markets.xml")[-1]["if-none-match"] == '"v1"'
    assert len(documents(stack, tenant)) == 3 and counts_agree(stack, tenant) == chunks

    server.route("/markets.xml", body=rss(items + [_item(4, 8)]), etag='"v2"')
    src, more = run_now(stack, sid)
    assert (more.state, more.done, more.unchanged, more.total) == ("succeeded", 1, 3, 4)
    assert src.etag == '"v2"' and len(documents(stack, tenant)) == 4
    counts_agree(stack, tenant)


def test_json_feed_and_json_lines_feeds(stack, server):
    tenant = "t-feed-json"
    jf = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "JF",
        "items": [
            {
                "id": "jf-1",
                "url": "https://jf.example/1",
                "title": "JSON one",
                "content_html": f"<p>{article(1100)}</p>",
                "date_published": "2024-05-01T12:00:00Z",
            }
        ],
    }
    jl = "\n".join(
        json.dumps(
            {"url": f"https://jl.example/{n}", "text": article(1200 + n), "published": f"2024-05-0{n}T00:00:00Z"}
        )
        for n in (1, 2)
    )
    jf_url = server.route("/feed.json", body=json.dumps(jf).encode(), headers={"Content-Type": "application/feed+json"})
    jl_url = server.route("/items.jsonl", body=jl.encode(), headers={"Content-Type": "application/x-ndjson"})
    _, job1 = run_now(stack, add(stack, "feed", jf_url, tenant))
    _, job2 = run_now(stack, add(stack, "feed", jl_url, tenant))
    assert (job1.done, job2.done) == (1, 2)
    docs = documents(stack, tenant)
    assert docs["https://jf.example/1"].published.year == 2024 and "<p>" not in docs["https://jf.example/1"].text
    assert docs["https://jl.example/2"].published.day == 2
    counts_agree(stack, tenant)


def test_malformed_feed_records_an_error_and_backs_off_while_another_source_runs(stack, server):
    from workers.app import configure
    from workers.tasks_sources import tick

    tenant = "t-feed-bad"
    bad = add(
        stack, "feed", server.route("/bad.xml", body=b"<rss><channel><item><title>x</channel>"), tenant, every=600
    )
    good = add(stack, "feed", server.route("/good.xml", body=rss([_item(20, 9)])), tenant, every=600)
    configure(stack.settings())
    tick.delay()  # both are due (new sources are), so one tick on the real worker starts both
    bad_src, good_src = wait_run(stack, bad), wait_run(stack, good)
    assert bad_src.failures == 1 and "malformed XML" in bad_src.last_error
    assert backoff_seconds(bad_src) == 1200  # twice the interval after one failure
    assert good_src.failures == 0 and good_src.last_error is None
    assert stack.wait(good_src.last_job_id).state == "succeeded"
    assert list(documents(stack, tenant)) == ["https://news.example/story/20"]

    bad_src, _ = run_now(stack, bad)
    assert bad_src.failures == 2 and backoff_seconds(bad_src) == 2400

    server.route("/bad.xml", body=rss([_item(21, 10)]))  # the outlet fixed its feed
    bad_src, job = run_now(stack, bad)
    assert (bad_src.failures, bad_src.last_error, job.done) == (0, None, 1)
    assert backoff_seconds(bad_src) == 600


def test_slow_feed_times_out_and_a_500_is_an_error(stack, server):
    tenant = "t-feed-slow"
    slow = add(stack, "feed", server.route("/slow.xml", body=rss([_item(30, 11)]), delay=4.0), tenant, timeout=1.0)
    src, job = run_now(stack, slow)
    assert job is None and src.failures == 1 and "timed out after 1s" in src.last_error
    err = add(stack, "feed", server.route("/error.xml", status=500, body=b"upstream down"), tenant)
    src, _ = run_now(stack, err)
    assert src.failures == 1 and "HTTP 500" in src.last_error
    dns = add(stack, "feed", "http://no-such-host.invalid/feed.xml", tenant)
    src, _ = run_now(stack, dns)
    assert src.failures == 1 and "cannot resolve host no-such-host.invalid" in src.last_error
    assert documents(stack, tenant) == {}


def test_syndicated_story_lands_in_one_near_duplicate_cluster(stack, server):
    tenant = "t-feed-synd"
    story = article(1300, sentences=20)
    original = {**_item(40, 12, link="https://a.example/s"), "description": story}
    a = add(stack, "feed", server.route("/outlet-a.xml", body=rss([original])), tenant)
    edited = {
        "title": "Story 40 (via B)",
        "link": "https://b.example/s",
        "description": near_copy(story, 3),
        "pubDate": "Tue, 12 Mar 2024 10:00:00 GMT",
    }
    b = add(stack, "feed", server.route("/outlet-b.xml", body=rss([edited, _item(41, 12)])), tenant)
    assert run_now(stack, a)[1].done == 1
    _, job = run_now(stack, b)
    assert (job.state, job.done, job.skipped) == ("succeeded", 1, 1)
    docs = documents(stack, tenant)
    original, copy = docs["https://a.example/s"], docs["https://b.example/s"]
    assert (copy.status, copy.duplicate_kind, copy.duplicate_of) == ("duplicate", "near", original.id)
    assert copy.cluster_id == original.cluster_id == document_id(tenant, "https://a.example/s")
    counts_agree(stack, tenant)


BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">'
    + b"".join(b'<!ENTITY %s "%s">' % (bytes([98 + i]), (b"&" + bytes([97 + i]) + b";") * 10) for i in range(8))
    + b']><rss version="2.0"><channel><item><link>https://x.example/1</link><description>&i;</description>'
    b"</item></channel></rss>"
)


def test_xml_bombs_and_external_entities_are_refused(stack, server, tmp_path):
    tenant = "t-feed-xxe"
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE " * 20)
    xxe = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file://{secret}">]><rss version="2.0">'
        f"<channel><item><link>https://x.example/2</link><description>&x;</description></item></channel></rss>"
    )
    for name, body in (("/bomb.xml", BOMB), ("/xxe.xml", xxe.encode())):
        src, job = run_now(stack, add(stack, "feed", server.route(name, body=body), tenant))
        assert job is None and src.failures == 1 and "refused unsafe XML" in src.last_error
    assert documents(stack, tenant) == {}


def test_private_addresses_and_redirects_to_them_are_refused(stack, server):
    tenant = "t-feed-ssrf"
    for url, why in (
        ("http://10.0.0.1/feed.xml", "10.0.0.1 is in a private range"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://[::1]:9/feed", "::1 is a loopback address"),
    ):
        src, _ = run_now(stack, add(stack, "feed", url, tenant))
        assert src.failures == 1 and why in src.last_error and "refused" in src.last_error
    redirect = server.route("/moved.xml", status=302, headers={"Location": "http://169.254.169.254/latest/"})
    src, _ = run_now(stack, add(stack, "feed", redirect, tenant))
    assert src.failures == 1 and "169.254.169.254 is a link-local address" in src.last_error
    assert len(server.hits("/moved.xml")) == 1
    assert documents(stack, tenant) == {}
    assert source(stack, src.id).next_run_at > source(stack, src.id).last_run_at


def test_cli_add_list_run_remove(stack, server):
    from typer.testing import CliRunner

    from cli.main import app

    tenant = "t-feed-cli"
    url = server.route("/cli.xml", body=rss([_item(50, 14)]))
    runner = CliRunner()
    bad = runner.invoke(app, ["feeds", "add", url, "--every", "5 minutes", "--tenant", tenant])
    assert bad.exit_code == 2 and "bad interval" in bad.output
    added = runner.invoke(app, ["feeds", "add", url, "--every", "5m", "--tenant", tenant, "--json"])
    assert added.exit_code == 0, added.output
    rec = json.loads(added.stdout)
    assert (rec["every_seconds"], rec["tenant"], rec["location"]) == (300, tenant, url)
    ran = runner.invoke(app, ["feeds", "run", rec["id"][:10], "--wait", "--json"])
    assert ran.exit_code == 0, ran.output
    result = json.loads(ran.stdout)
    assert result["job"]["state"] == "succeeded" and result["job"]["counters"]["done"] == 1
    assert result["job"]["kind"] == "feed" and result["source"]["failures"] == 0
    listed = json.loads(runner.invoke(app, ["sources", "list", "--kind", "feed", "--tenant", tenant, "--json"]).stdout)
    assert [r["id"] for r in listed] == [rec["id"]] and listed[0]["last_job_id"] == result["job"]["id"]
    assert runner.invoke(app, ["feeds", "remove", rec["id"]]).exit_code == 0
    assert json.loads(runner.invoke(app, ["feeds", "list", "--tenant", tenant, "--json"]).stdout) == []
    assert documents(stack, tenant)["https://news.example/story/50"].status == "indexed"
