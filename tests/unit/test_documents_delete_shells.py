"""The shells of deletion without workers: the API's answers (202 with a queued delete job and its task, 404 for
another tenant's document, 422 in the API's error format for a selection that is not exactly one) and the CLI's
refusal to delete without --yes where it cannot ask."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from api.schemas import InvalidRequest
from pipeline.store import repo
from pipeline.store.models import Document
from tests.unit.api_support import Api
from workers.client import DELETE_DOCUMENTS


@pytest.fixture
def api(tmp_path):
    api = Api(tmp_path)
    api.tasks = []
    api.ctx.send_task = lambda name, args: api.tasks.append((name, args))
    return api


def _doc(session, tenant: str, doc_id: str, source: str) -> None:
    session.add(
        Document(
            id=doc_id,
            tenant=tenant,
            source=source,
            content_type="txt",
            text="t",
            content_hash=doc_id,
            status="indexed",
            cluster_id=doc_id,
        )
    )


def test_delete_by_id_queues_a_delete_job_of_the_callers_tenant_only(api):
    mine, theirs = "a" * 32, "b" * 32
    with api.session() as s:
        _doc(s, "acme", mine, "https://x.example/1")
        _doc(s, "globex", theirs, "https://x.example/1")
    h = api.key("acme")
    assert api.client.delete(f"/v1/documents/{theirs}", headers=h).status_code == 404
    assert api.client.delete("/v1/documents/not-an-id", headers=h).status_code == 404
    assert api.tasks == []
    r = api.client.delete(f"/v1/documents/{mine}", headers=h)
    assert r.status_code == 202 and r.json()["state"] == "queued" and r.json()["documents"] == 1
    job_id = r.json()["job_id"]
    assert api.tasks == [(DELETE_DOCUMENTS, [job_id])]
    with api.session() as s:
        job = repo.get_job(s, job_id)
        assert (job.tenant, job.kind, job.options["select"]) == ("acme", "delete", {"ids": [mine]})
    shown = api.client.get(f"/v1/jobs/{job_id}", headers=h).json()
    assert (shown["kind"], shown["counters"]["total"]) == ("delete", 1)


@pytest.mark.parametrize(
    "body",
    [{}, {"source": "s", "job": "c" * 32}, {"ids": []}, {"ids": ["x"]}, {"sources": ["s"]}],
)
def test_a_selection_that_is_not_exactly_one_is_a_422_in_the_api_error_format(api, body):
    r = api.client.post("/v1/documents/delete", headers=api.key("acme"), json=body)
    assert r.status_code == 422, r.text
    problem = InvalidRequest.model_validate(r.json())
    assert problem.error == "invalid_request" and problem.problems
    assert api.tasks == []


def test_delete_by_source_and_job_match_the_tenant_s_documents_or_404(api):
    with api.session() as s:
        _doc(s, "acme", "a" * 32, "https://x.example/news/1")
        _doc(s, "acme", "b" * 32, "https://x.example/news/2")
        _doc(s, "acme", "c" * 32, "https://x.example/other")
        _doc(s, "globex", "d" * 32, "https://x.example/news/3")
        other_job = repo.create_job(s, "globex", []).id
    h = api.key("acme")
    r = api.client.post("/v1/documents/delete", headers=h, json={"source": "https://x.example/news/*"})
    assert r.status_code == 202 and r.json()["documents"] == 2
    assert api.client.post("/v1/documents/delete", headers=h, json={"source": "nothing*"}).status_code == 404
    assert api.client.post("/v1/documents/delete", headers=h, json={"job": other_job}).status_code == 404
    missing = api.client.post("/v1/documents/delete", headers=h, json={"ids": ["a" * 32, "d" * 32]})
    assert missing.status_code == 404 and "d" * 32 in missing.json()["message"]
    assert len(api.tasks) == 1


def test_removing_a_feed_with_its_documents_queues_a_delete_job(api):
    h = api.key("acme")
    feed = api.client.post("/v1/feeds", headers=h, json={"url": "https://x.example/feed.xml", "prune": True}).json()
    assert feed["prune"] is True
    with api.session() as s:
        s.add(
            Document(
                id="e" * 32,
                tenant="acme",
                source="https://x.example/story",
                content_type="jsonl",
                text="t",
                meta={"source_id": feed["id"]},
                content_hash="h",
                status="indexed",
                cluster_id="e" * 32,
            )
        )
    r = api.client.delete(f"/v1/feeds/{feed['id']}", headers=h, params={"delete_documents": "true"})
    assert r.status_code == 202 and r.json()["documents"] == 1
    assert api.tasks == [(DELETE_DOCUMENTS, [r.json()["job_id"]])]
    assert api.client.get("/v1/feeds", headers=h).json()["items"] == []


def test_the_cli_refuses_to_delete_without_yes_where_it_cannot_ask(tmp_path, monkeypatch):
    from cli.main import app
    from migrations.runner import upgrade
    from pipeline.config import get_settings
    from pipeline.store.db import session_scope

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    with session_scope(url) as s:
        _doc(s, "acme", "a" * 32, "/in/a.txt")
    monkeypatch.setenv("DOCPIPE_DATABASE_URL", url)
    monkeypatch.setenv("CI", "true")
    get_settings.cache_clear()
    try:
        refused = CliRunner().invoke(app, ["documents", "delete", "a" * 32, "--tenant", "acme"])
        assert refused.exit_code == 2 and "--yes" in refused.output
        unknown = CliRunner().invoke(app, ["documents", "delete", "f" * 32, "--tenant", "acme", "--yes"])
        assert unknown.exit_code == 2 and "no document" in unknown.output
        both = CliRunner().invoke(app, ["documents", "delete", "a" * 32, "--source", "s", "--tenant", "acme"])
        assert both.exit_code == 2 and "exactly one" in both.output
    finally:
        get_settings.cache_clear()
    with session_scope(url) as s:
        assert s.get(Document, "a" * 32) is not None
