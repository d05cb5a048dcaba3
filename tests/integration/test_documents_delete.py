"""Deleting documents end to end, over the real workers, noida-db and SQL: through the API (DELETE by id), the CLI
(delete by job), a feed that prunes vanished items, and a feed removed with its documents."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pipeline.sources import catalog
from tests.feedserver import FeedServer, rss
from tests.fixtures import article
from tests.integration.api_support import api_client, key_for, upload, wait_job
from tests.sources_support import chunks_of, counts_agree, db, documents, run_now

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(stack):
    with api_client(stack) as c:
        yield c


def _names(client, headers, query: str) -> set[str]:
    hits = client.get("/v1/search", headers=headers, params={"q": query, "mode": "bm25", "k": 10}).json()["hits"]
    return {h["name"] for h in hits}


def test_delete_by_id_through_the_api_then_by_job_through_the_cli(stack, client):
    from cli.main import app

    tenant = "t-del-api"
    h = key_for(stack, tenant)
    job_id = upload(
        client,
        h,
        {
            "quokka.txt": article(701) + " Quokka dockers strike at the harbour.",
            "wombat.txt": article(702) + " Wombat bakers strike at dawn.",
            "numbat.txt": article(703) + " Numbat miners strike at noon.",
        },
    )
    assert wait_job(client, h, job_id)["counters"]["done"] == 3
    listed = client.get("/v1/documents", headers=h, params={"name": "quokka.txt"}).json()["items"]
    quokka = listed[0]
    assert _names(client, h, "quokka dockers") == {"quokka.txt"} and quokka["chunk_count"] > 0
    assert counts_agree(stack, tenant) > quokka["chunk_count"]

    r = client.delete(f"/v1/documents/{quokka['id']}", headers=h)
    assert r.status_code == 202 and r.json()["documents"] == 1, r.text
    job = wait_job(client, h, r.json()["job_id"])
    assert (job["kind"], job["state"], job["counters"]["done"], job["counters"]["chunks"]) == (
        "delete",
        "succeeded",
        1,
        quokka["chunk_count"],
    )
    assert job["metrics"]["deleted_documents"] == 1 and job["metrics"]["deleted_chunks"] == quokka["chunk_count"]
    assert client.get(f"/v1/documents/{quokka['id']}", headers=h).status_code == 404
    assert client.delete(f"/v1/documents/{quokka['id']}", headers=h).status_code == 404
    assert "quokka.txt" not in _names(client, h, "quokka dockers")
    assert chunks_of(stack, tenant, quokka["id"]) == 0
    assert _names(client, h, "wombat bakers") == {"wombat.txt"}
    counts_agree(stack, tenant)

    result = CliRunner().invoke(
        app, ["documents", "delete", "--job", job_id[:12], "--tenant", tenant, "--yes", "--wait", "--json"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert (record["kind"], record["state"], record["counters"]["done"]) == ("delete", "succeeded", 2)
    assert record["outcome"].startswith("deleted 2 document(s)")
    assert client.get("/v1/documents", headers=h).json()["items"] == []
    assert counts_agree(stack, tenant) == 0
    again = CliRunner().invoke(app, ["documents", "delete", "--job", job_id, "--tenant", tenant, "--yes"])
    assert again.exit_code == 1 and "no document of job" in again.output


def _item(n: int) -> dict:
    return {"title": f"Story {n}", "link": f"https://news.example/del/{n}", "description": article(750 + n)}


def test_a_pruning_feed_deletes_vanished_items_and_removal_deletes_the_rest(stack, client):
    tenant = "t-del-feed"
    with FeedServer() as server:
        url = server.route("/prune.xml", body=rss([_item(1), _item(2), _item(3)]))
        with db(stack) as s:
            sid = catalog.add_source(s, "feed", url, 3600, tenant, prune=True).id
        src, job = run_now(stack, sid)
        assert (job.state, job.done) == ("succeeded", 3), src.last_error
        story2 = documents(stack, tenant)["https://news.example/del/2"]
        assert chunks_of(stack, tenant, story2.id) == story2.chunk_count > 0

        server.route("/prune.xml", body=rss([_item(1), _item(3), _item(4)]))
        src, job = run_now(stack, sid)
        assert (job.state, job.done, job.unchanged) == ("succeeded", 1, 2), src.last_error
        assert "1 document(s) of items gone from the feed deleted" in src.last_status
        docs = documents(stack, tenant)
        assert sorted(docs) == [f"https://news.example/del/{n}" for n in (1, 3, 4)]
        assert chunks_of(stack, tenant, story2.id) == 0
        assert counts_agree(stack, tenant) > 0

    h = key_for(stack, tenant)
    r = client.delete(f"/v1/feeds/{sid}", headers=h, params={"delete_documents": "true"})
    assert r.status_code == 202 and r.json()["documents"] == 3, r.text
    job = wait_job(client, h, r.json()["job_id"])
    assert (job["kind"], job["state"], job["counters"]["done"]) == ("delete", "succeeded", 3)
    assert documents(stack, tenant) == {} and counts_agree(stack, tenant) == 0
    assert client.get("/v1/feeds", headers=h).json()["items"] == []
