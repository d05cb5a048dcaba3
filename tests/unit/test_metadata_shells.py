"""The shells of metadata: /v1/search's where= and facet= and PATCH /v1/documents/{id} (TestClient over SQLite and
a real noida-db), `docpipe search --where` refusals and `docpipe documents set-meta`."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from pipeline.index import IndexLayout, chunk_action, chunk_source, refresh, write_chunks
from pipeline.store.models import Document
from tests.unit.api_support import Api

DOCS = {"a" * 32: {"desk": "markets", "n": 3}, "b" * 32: {"desk": "rates", "n": 10}, "c" * 32: {"desk": "markets"}}


@pytest.fixture
def api(tmp_path, noida):
    api = Api(tmp_path, elasticsearch_url=f"http://127.0.0.1:{noida.es_port}", index_prefix=f"m{uuid.uuid4().hex[:8]}")
    layout = IndexLayout(api.ctx.es, api.settings.index_prefix)
    live = layout.ensure_live(4)
    with api.session() as s:
        for doc_id, meta in DOCS.items():
            s.add(
                Document(
                    id=doc_id,
                    tenant="acme",
                    source=f"/in/{doc_id[0]}.txt",
                    content_type="txt",
                    title=None,
                    published=datetime(2024, 1, 1, tzinfo=UTC),
                    text="quarterly report",
                    meta=meta,
                    content_hash=doc_id,
                    status="indexed",
                    cluster_id=doc_id,
                    chunk_count=1,
                )
            )
    with api.session() as s:
        docs = s.query(Document).all()
        actions = [chunk_action(live, chunk_source(d, 0, 0, 16, d.text, [1.0, 0, 0, 0], "2024-03-01")) for d in docs]
    assert write_chunks(api.ctx.es, actions).ok == 3
    refresh(api.ctx.es, live)
    return api


def _search(api, h, *params: tuple[str, str]):
    return api.client.get("/v1/search", params=[("q", "report"), ("mode", "bm25"), *params], headers=h)


def test_search_filters_with_where_and_counts_facets(api):
    h = api.key("acme")
    r = _search(api, h, ("where", "desk=markets"), ("facet", "desk"))
    assert r.status_code == 200
    assert sorted(hit["doc_id"] for hit in r.json()["hits"]) == ["a" * 32, "c" * 32]
    assert r.json()["facets"] == {"desk": [{"value": "markets", "count": 2}]}
    r = _search(api, h, ("where", "n>=5"), ("where", "desk=markets,rates"))
    assert [hit["doc_id"] for hit in r.json()["hits"]] == ["b" * 32] and r.json()["facets"] == {}
    everything = _search(api, h, ("facet", "desk"), ("facet", "source")).json()["facets"]
    assert everything["desk"] == [{"value": "markets", "count": 2}, {"value": "rates", "count": 1}]
    assert len(everything["source"]) == 3
    other = _search(api, api.key("globex"), ("facet", "desk")).json()
    assert other["hits"] == [] and other["facets"] == {"desk": []}


@pytest.mark.parametrize(("name", "value"), [("where", "n>abc"), ("where", "desk"), ("facet", "published")])
def test_bad_filters_and_facets_are_422_in_the_api_error_format(api, name, value):
    r = _search(api, api.key("acme"), (name, value))
    assert (
        r.status_code == 422 and r.json()["error"] == "invalid_request" and value.split(">")[0] in r.json()["message"]
    )


def test_patch_changes_metadata_and_what_filters_find(api):
    h, doc = api.key("acme"), "a" * 32
    r = api.client.patch(f"/v1/documents/{doc}", json={"meta": {"desk": "rates", "n": None, "Owner": "Ann"}}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["meta"] == {"desk": "rates", "owner": "Ann"} and r.json()["chunks"] == 1
    assert api.client.get(f"/v1/documents/{doc}", headers=h).json()["meta"] == {"desk": "rates", "owner": "Ann"}
    hits = _search(api, h, ("where", "desk=rates")).json()["hits"]
    assert sorted(hit["doc_id"] for hit in hits) == ["a" * 32, "b" * 32]
    refused = api.client.patch(f"/v1/documents/{doc}", json={"meta": {"x": {"nested": 1}}}, headers=h)
    assert refused.status_code == 422 and "meta: metadata 'x' is a dict" in refused.json()["message"]
    assert (
        api.client.patch(f"/v1/documents/{doc}", json={"meta": {"d": 1}}, headers=api.key("globex")).status_code == 404
    )
    assert api.client.patch(f"/v1/documents/{doc}", json={"desk": "x"}, headers=h).status_code == 422


def test_cli_set_meta_and_search_refusals(api, monkeypatch):
    from cli.main import app
    from pipeline.config import get_settings

    monkeypatch.setenv("DOCPIPE_DATABASE_URL", api.settings.sql_url)
    monkeypatch.setenv("DOCPIPE_ELASTICSEARCH_URL", api.settings.elasticsearch_url)
    monkeypatch.setenv("DOCPIPE_INDEX_PREFIX", api.settings.index_prefix)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        done = runner.invoke(
            app, ["documents", "set-meta", "c" * 32, "tag=x", "tag=y", "--unset", "desk", "--tenant", "acme", "--json"]
        )
        assert done.exit_code == 0, done.output
        assert '"tag": [' in done.output and '"desk"' not in done.output
        both = runner.invoke(app, ["documents", "set-meta", "c" * 32, "k=1", "--unset", "k", "--tenant", "acme"])
        assert both.exit_code == 2 and "both set and unset" in both.output
        missing = runner.invoke(app, ["documents", "set-meta", "f" * 32, "k=1", "--tenant", "acme"])
        assert missing.exit_code == 2 and "no document" in missing.output
        bad = runner.invoke(app, ["search", "report", "--mode", "bm25", "--where", "n>abc", "--tenant", "acme"])
        assert bad.exit_code == 2 and "n>abc" in bad.output
        found = runner.invoke(
            app,
            ["search", "report", "-m", "bm25", "-w", "tag=y", "--facet", "tag", "--tenant", "acme", "--json"],
        )
        assert found.exit_code == 0, found.output
        answer = json.loads(found.output)
        assert [h["doc_id"] for h in answer["hits"]] == ["c" * 32]
        assert answer["facets"] == {"tag": [{"value": "x", "count": 1}, {"value": "y", "count": 1}]}
    finally:
        get_settings.cache_clear()
    hits = _search(api, api.key("acme"), ("where", "tag=y")).json()["hits"]
    assert [hit["doc_id"] for hit in hits] == ["c" * 32]


def test_upload_form_fields_and_a_json_metadata_part_become_the_jobs_metadata(tmp_path):
    from pipeline.store import repo

    api = Api(tmp_path)
    h = api.key("acme")
    files = [("files", ("a.txt", b"alpha text", "text/plain")), ("files", ("b.txt", b"beta text", "text/plain"))]
    form = {"Desk": "markets", "metadata": '{"n": 3, "tags": ["x", "y"], "desk": "rates"}'}
    r = api.client.post("/v1/documents", files=files, data=form, headers=h)
    assert r.status_code == 202, r.text
    with api.session() as s:
        job = repo.get_job(s, r.json()["job_id"])
        assert job.options["metadata"] == {"desk": "rates", "n": 3, "tags": ["x", "y"]}  # the JSON part wins
    too_many = {"metadata": json.dumps({f"k{i}": i for i in range(65)})}
    refused = api.client.post("/v1/documents", files=files[:1], data=too_many, headers=h)
    assert refused.status_code == 422 and "at most 64" in refused.json()["message"]
    bad = api.client.post("/v1/documents", files=files[:1], data={"metadata": "[1]"}, headers=h)
    assert bad.status_code == 422 and "JSON object" in bad.json()["message"]
    batch = {"documents": [{"id": "d1", "text": "t", "meta": {"tags": ["a", "b"], "v": "x" * 5000}}]}
    long = api.client.post("/v1/documents", json=batch, headers=h)
    assert long.status_code == 422 and "at most 4096" in long.json()["message"]
