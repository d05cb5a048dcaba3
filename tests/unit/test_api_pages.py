"""Cursor pagination of every /v1 list, and the routes for sources, reindex and index versions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from api.pages import encode_cursor
from pipeline.config import ApiSettings
from pipeline.store import repo
from pipeline.store.models import IndexVersion, Job
from pipeline.types import utcnow
from tests.unit.api_support import Api
from workers import client


@pytest.fixture()
def api(tmp_path):
    api = Api(tmp_path, api=ApiSettings(admin_tenants="ops"))
    api.tasks = []
    api.ctx.send_task = lambda name, args: api.tasks.append((name, args))
    return api


def _jobs(api, tenant: str, n: int, at=None) -> list[str]:
    """n jobs; with `at`, all created at that very instant (the sort key ties on time)."""
    with api.session() as s:
        jobs = [repo.create_job(s, tenant, [f"/in/{i}.txt"]) for i in range(n)]
        if at is not None:
            for job in jobs:
                job.created_at = at
        return [j.id for j in jobs]


def _walk(api, path: str, headers: dict, limit: int, between=None) -> list[dict]:
    seen, cursor, pages = [], None, 0
    while True:
        r = api.client.get(path, headers=headers, params={"limit": limit, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"items", "next_cursor"} and len(body["items"]) <= limit
        seen += body["items"]
        cursor, pages = body["next_cursor"], pages + 1
        if cursor is None:
            return seen
        if between is not None:
            between(pages)


def test_pages_walk_every_job_once_newest_first_even_with_ties_and_inserts_between_pages(api):
    acme = api.key("acme")
    tied = _jobs(api, "acme", 5, at=utcnow() - timedelta(hours=1))
    older = _jobs(api, "acme", 2, at=utcnow() - timedelta(hours=2))
    _jobs(api, "globex", 3)
    inserted: list[str] = []
    seen = _walk(api, "/v1/jobs", acme, 2, between=lambda _: inserted.extend(_jobs(api, "acme", 1)))
    ids = [j["id"] for j in seen]
    assert inserted and len(ids) == len(set(ids))  # no job twice although jobs arrived between the pages
    assert set(ids) == set(tied) | set(older)  # every job that existed, and the newer ones only on a new walk
    assert set(ids[:5]) == set(tied) and ids[:5] == sorted(tied, reverse=True)  # time, then id, descending
    assert len(_walk(api, "/v1/jobs", acme, 500)) == 7 + len(inserted)


def test_a_cursor_that_this_list_did_not_give_is_a_422(api):
    acme = api.key("acme")
    _jobs(api, "acme", 3)
    for cursor in ("not-base64!", "Zm9v", encode_cursor(["yesterday", "x"]), encode_cursor([1, 2, 3])):
        r = api.client.get("/v1/jobs", headers=acme, params={"cursor": cursor})
        assert r.status_code == 422 and r.json()["error"] in ("invalid_cursor", "invalid_request"), cursor
    assert api.client.get("/v1/jobs", headers=acme, params={"limit": 501}).status_code == 422


# answers that are not collections: a ranked search, time series, a ranking recomputed per request (top-N)
_REPORTS = {"/v1/search", "/v1/watchlist/suggestions"}


def test_every_list_route_is_a_page(api):
    """A GET under /v1 that answers a collection answers a page (so lists added later page too)."""
    doc = api.app.openapi()
    schemas = doc["components"]["schemas"]
    lists = []
    for path, methods in doc["paths"].items():
        get = methods.get("get")
        if not path.startswith("/v1/") or get is None or path in _REPORTS or path.endswith("/series"):
            continue
        schema = get["responses"]["200"]["content"]["application/json"]["schema"]
        if "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
        assert schema.get("type") != "array", f"{path} answers a bare array: use api/pages.py"
        if "items" in schema.get("properties", {}):
            lists.append(path)
            names = {p["name"] for p in get.get("parameters", [])}
            assert {"limit", "cursor"} <= names and set(schema["required"]) >= {"items", "next_cursor"}, path
    assert {"/v1/jobs", "/v1/documents", "/v1/feeds", "/v1/sources", "/v1/watchlist", "/v1/alerts"} <= set(lists)
    assert {"/v1/models", "/v1/index-versions"} <= set(lists)
    acme = api.key("acme")
    for path in lists:
        if "{" not in path:
            assert api.client.get(path, headers=acme, params={"limit": 1}).json()["next_cursor"] is None, path


def test_feeds_and_folder_sources_are_created_read_changed_and_removed(api, tmp_path):
    acme, globex = api.key("acme"), api.key("globex")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    body = {"kind": "folder", "location": str(inbox), "every": "1h"}
    refused = api.client.post("/v1/sources", headers=acme, json=body)
    assert refused.status_code == 403 and "DOCPIPE_API_FOLDER_ROOTS" in refused.json()["message"]

    api.ctx.settings.api.folder_roots = str(tmp_path)
    outside = api.client.post("/v1/sources", headers=acme, json={**body, "location": "/etc"})
    assert outside.status_code == 403
    r = api.client.post("/v1/sources", headers=acme, json=body)
    assert r.status_code == 201, r.text
    folder = r.json()
    feed = api.client.post(
        "/v1/sources", headers=acme, json={"kind": "feed", "location": "https://news.example/rss", "every": "5m"}
    ).json()
    assert (folder["kind"], folder["every_seconds"], feed["kind"]) == ("folder", 3600, "feed")
    listed = _walk(api, "/v1/sources", acme, 1)
    assert [s["id"] for s in listed] == [folder["id"], feed["id"]]  # oldest first
    assert [s["id"] for s in api.client.get("/v1/sources?kind=feed", headers=acme).json()["items"]] == [feed["id"]]
    assert api.client.get(f"/v1/sources/{folder['id']}", headers=globex).status_code == 404

    changed = api.client.patch(f"/v1/sources/{feed['id']}", headers=acme, json={"every": "2h", "enabled": False})
    assert changed.status_code == 200 and (changed.json()["every_seconds"], changed.json()["enabled"]) == (7200, False)
    assert api.client.get(f"/v1/sources/{feed['id']}", headers=acme).json()["every"] == "2h"
    folder_prune = api.client.patch(f"/v1/sources/{folder['id']}", headers=acme, json={"prune": False})
    assert folder_prune.status_code == 422  # a folder always prunes
    assert api.client.patch(f"/v1/sources/{feed['id']}", headers=acme, json={"every": "soon"}).status_code == 422

    run = api.client.post(f"/v1/sources/{folder['id']}/run", headers=acme)
    assert run.status_code == 202 and api.tasks == [(client.RUN_SOURCE, [folder["id"], api.tasks[0][1][1]])]
    assert api.client.delete(f"/v1/sources/{folder['id']}", headers=globex).status_code == 404
    assert api.client.delete(f"/v1/sources/{folder['id']}", headers=acme).status_code == 204
    assert [s["id"] for s in _walk(api, "/v1/sources", acme, 10)] == [feed["id"]]


def test_reindex_and_rollback_are_for_admin_tenants_and_one_at_a_time(api):
    ops, acme = api.key("ops"), api.key("acme")
    refused = api.client.post("/v1/index/reindex", headers=acme, json={})
    assert refused.status_code == 403 and "DOCPIPE_API_ADMIN_TENANTS" in refused.json()["message"]
    assert (
        api.client.post("/v1/index/reindex", headers=ops, json={"chunk_tokens": 64, "chunk_overlap": 64}).status_code
        == 422
    )
    r = api.client.post("/v1/index/reindex", headers=ops, json={"force": True, "reason": "new analyzer"})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    assert api.tasks == [(client.REINDEX, [job_id])]
    with api.session() as s:
        job = s.get(Job, job_id)
        assert (job.kind, job.tenant, job.options) == (
            "reindex",
            "*",
            {"action": "build", "force": True, "reason": "new analyzer"},
        )
    again = api.client.post("/v1/index/rollback", headers=ops)
    assert again.status_code == 409 and again.json()["job_id"] == job_id and len(api.tasks) == 1
    # the job spans every tenant: its admins follow it, the other tenants do not see it
    assert api.client.get(f"/v1/jobs/{job_id}", headers=ops).json()["kind"] == "reindex"
    assert api.client.get(f"/v1/jobs/{job_id}", headers=acme).status_code == 404
    assert job_id not in {j["id"] for j in api.client.get("/v1/jobs", headers=ops).json()["items"]}


def test_index_versions_page_with_state_and_configuration(api):
    prefix = api.settings.index_prefix
    with api.session() as s:
        for v, state in ((1, "retired"), (2, "live"), (3, "building")):
            s.add(
                IndexVersion(
                    name=f"{prefix}-v{v}",
                    version=v,
                    config_hash=f"{v}" * 64,
                    model="m",
                    dims=384,
                    state=state,
                    chunk_tokens=200,
                    chunk_overlap=40,
                )
            )
        s.add(IndexVersion(name="other-prefix-v9", version=9, config_hash="f" * 64, model="m", dims=8, state="live"))
    versions = _walk(api, "/v1/index-versions", api.key("acme"), 2)
    assert [(v["version"], v["state"], v["live"]) for v in versions] == [
        (3, "building", False),
        (2, "live", True),
        (1, "retired", False),
    ]
    assert versions[1]["config"] == "2" * 12 and versions[1]["chunk_tokens"] == 200
