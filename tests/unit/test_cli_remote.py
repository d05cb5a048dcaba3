"""`docpipe` with DOCPIPE_API_URL: the commands go through the API (here a real app in this process) and never
open the database; the API's refusals come out as one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import remote
from cli.main import app
from pipeline.config import ApiSettings
from pipeline.store.models import Document, Job
from pipeline.types import utcnow
from tests.unit.api_support import Api
from workers import client


@pytest.fixture()
def api(tmp_path, monkeypatch):
    api = Api(tmp_path, api=ApiSettings(admin_tenants="ops"))
    api.tasks = []
    api.ctx.send_task = lambda name, args: api.tasks.append((name, args))

    def run_at_once(job_id: str) -> None:  # the worker's part, so `--wait` sees the job end
        api.sent.append(job_id)
        with api.session() as s:
            job = s.get(Job, job_id)
            job.state, job.total, job.done, job.finished_at = "succeeded", len(job.inputs), len(job.inputs), utcnow()

    api.ctx.enqueue = run_at_once
    api.as_tenant = lambda tenant: monkeypatch.setattr(
        remote, "configured", lambda settings=None: remote.RemoteApi("", api.key(tenant)["X-API-Key"], api.client)
    )
    # no database for the CLI: a command that opened one would fail on this path
    monkeypatch.setenv("DOCPIPE_DATABASE_URL", f"sqlite:///{tmp_path / 'absent' / 'no.db'}")
    monkeypatch.setenv("DOCPIPE_DATA_DIR", str(tmp_path / "cli-data"))
    from pipeline.config import get_settings

    get_settings.cache_clear()
    yield api
    get_settings.cache_clear()


def docpipe(*args: str):
    return CliRunner().invoke(app, list(args), prog_name="docpipe")


def test_ingest_uploads_the_files_waits_and_the_job_commands_read_the_api(api, tmp_path):
    api.as_tenant("acme")
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha")
    (folder / "sub" / "b.md").write_text("# beta")
    (folder / "skip.bin").write_bytes(b"\0")
    (folder / ".hidden.txt").write_text("no")
    done = docpipe("ingest", str(folder), "--wait", "--json")
    assert done.exit_code == 0, done.output
    rec = json.loads(done.stdout)
    assert (rec["state"], rec["tenant"], rec["counters"]["total"]) == ("succeeded", "acme", 2)
    with api.session() as s:
        assert sorted(p.rsplit("/", 1)[1] for p in s.get(Job, rec["id"]).inputs) == ["a.txt", "b.md"]
    listed = json.loads(docpipe("jobs", "--json").stdout)
    assert [j["id"] for j in listed] == [rec["id"]]
    assert json.loads(docpipe("job", rec["id"][:8], "--json").stdout)["id"] == rec["id"]  # a prefix works too
    missing = docpipe("job", "f" * 32)
    assert missing.exit_code == 2 and missing.stderr.strip().startswith("error: no job ffff")
    assert "HTTP 404" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1


def test_two_files_of_one_name_are_refused_before_any_upload(api, tmp_path):
    api.as_tenant("acme")
    for sub in ("x", "y"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "same.txt").write_text(sub)
    r = docpipe("ingest", str(tmp_path / "x"), str(tmp_path / "y"))
    assert r.exit_code == 2 and "same.txt" in r.stderr and api.sent == []


def test_a_file_name_that_is_not_utf8_is_refused_before_any_upload(api, tmp_path):
    api.as_tenant("acme")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "fine.txt").write_text("fine")
    Path(os.fsdecode(bytes(tmp_path) + b"/docs/caf\xe9.txt")).write_text("latin-1 name")
    r = docpipe("ingest", str(tmp_path / "docs"))
    assert r.exit_code == 2 and api.sent == []
    assert r.stderr.strip() == (
        f"error: 1 file name(s) are not UTF-8, e.g. {tmp_path}/docs/caf\ufffd.txt: rename them (e.g. with convmv)"
    )


def test_documents_delete_sources_and_reindex_through_the_api(api, tmp_path):
    api.as_tenant("acme")
    doc_id = "d" * 32
    with api.session() as s:
        s.add(
            Document(
                id=doc_id,
                tenant="acme",
                source="/in/a.txt",
                content_type="text",
                text="t",
                content_hash="h",
                status="indexed",
                cluster_id=doc_id,
            )
        )
    unconfirmed = docpipe("documents", "delete", doc_id)
    assert unconfirmed.exit_code == 2 and "--yes" in unconfirmed.stderr and api.tasks == []
    deleted = docpipe("documents", "delete", doc_id, "--yes", "--json")
    assert deleted.exit_code == 0, deleted.output
    assert api.tasks == [(client.DELETE_DOCUMENTS, [json.loads(deleted.stdout)["job_id"]])]

    added = docpipe("feeds", "add", "https://news.example/rss", "--every", "5m", "--json")
    assert added.exit_code == 0, added.output
    feed = json.loads(added.stdout)
    assert [s["id"] for s in json.loads(docpipe("sources", "list", "--json").stdout)] == [feed["id"]]
    assert docpipe("feeds", "remove", feed["id"][:6]).exit_code == 0
    assert json.loads(docpipe("feeds", "list", "--json").stdout) == []
    folder = docpipe("sources", "add-folder", str(tmp_path), "--every", "1h")
    assert folder.exit_code == 2 and "DOCPIPE_API_FOLDER_ROOTS" in folder.stderr and "HTTP 403" in folder.stderr

    refused = docpipe("reindex", "--force")
    assert refused.exit_code == 2 and "may not act on the shared index" in refused.stderr
    api.as_tenant("ops")
    queued = docpipe("reindex", "--force", "--reason", "remote", "--json")
    assert queued.exit_code == 0, queued.output
    job_id = json.loads(queued.stdout)["job_id"]
    assert api.tasks[-1] == (client.REINDEX, [job_id])
    with api.session() as s:
        assert s.get(Job, job_id).options == {"action": "build", "force": True, "reason": "remote"}


def test_api_failures_are_one_line_with_the_exit_code_of_their_kind(api, monkeypatch):
    api.as_tenant("acme")
    down = docpipe("search", "rates", "--mode", "bm25")  # the API's Elasticsearch refuses: a 503
    assert down.exit_code == 1 and len(down.stderr.strip().splitlines()) == 1
    assert "HTTP 503" in down.stderr and "try again shortly" in down.stderr
    monkeypatch.setattr(remote, "configured", lambda settings=None: remote.RemoteApi("", "dpk_wrong", api.client))
    bad_key = docpipe("jobs")
    assert bad_key.exit_code == 2 and "HTTP 401: check DOCPIPE_API_KEY" in bad_key.stderr
    monkeypatch.setattr(remote, "configured", lambda settings=None: remote.RemoteApi("http://127.0.0.1:1", "k"))
    unreachable = docpipe("jobs")
    assert unreachable.exit_code == 1
    assert unreachable.stderr.strip().startswith("error: cannot reach the docpipe API at http://127.0.0.1:1")


def test_the_url_without_a_key_is_refused_in_one_line(monkeypatch):
    monkeypatch.setenv("DOCPIPE_API_URL", "http://127.0.0.1:1")
    monkeypatch.delenv("DOCPIPE_API_KEY", raising=False)
    from pipeline.config import get_settings

    get_settings.cache_clear()
    try:
        r = docpipe("jobs")
    finally:
        get_settings.cache_clear()
    assert r.exit_code == 2 and r.stderr.strip() == (
        "error: DOCPIPE_API_URL is set but DOCPIPE_API_KEY is not: set the key the API gave you"
    )
