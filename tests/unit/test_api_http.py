"""The /v1 HTTP contract over SQLite with recorded tasks: uploads, errors, auth, tenancy, jobs, metrics."""

from __future__ import annotations

import json

import pytest

from pipeline.config import ApiSettings
from pipeline.jobs.stats import JobStats, add_job_stats
from pipeline.store import repo
from pipeline.store.models import Document, Job, JobState
from pipeline.types import Rejected, document_id
from tests.unit.api_support import Api


@pytest.fixture()
def api(tmp_path):
    return Api(tmp_path, max_file_bytes=1000, api=ApiSettings(max_upload_files=3, max_json_bytes=2000))


def _files(*items):
    return [("files", (name, body, "application/octet-stream")) for name, body in items]


def test_upload_saves_files_at_a_stable_path_per_tenant_and_name_and_queues_one_job(api):
    acme = api.key("acme")
    r = api.client.post("/v1/documents", headers=acme, files=_files(("a.txt", b"first"), ("dir\\b.md", b"# B")))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["files"] == ["a.txt", "b.md"] and api.sent == [body["job_id"]]
    with api.session() as s:
        job = s.get(Job, body["job_id"])
        assert (job.tenant, job.kind, job.state) == ("acme", "upload", JobState.QUEUED)
        inputs = list(job.inputs)
    uploads = api.ctx.uploads_dir
    assert inputs == [str(uploads / "acme" / "a.txt"), str(uploads / "acme" / "b.md")]
    r2 = api.client.post("/v1/documents", headers=acme, files=_files(("a.txt", b"second")))
    with api.session() as s:
        assert s.get(Job, r2.json()["job_id"]).inputs == [inputs[0]]  # same path: same document identity
    assert (uploads / "acme" / "a.txt").read_bytes() == b"second"
    assert list((uploads / ".incoming").iterdir()) == []


def test_json_batch_becomes_a_jsonl_file_whose_records_keep_their_ids(api):
    docs = [
        {
            "id": "n-1",
            "text": "Rates rose.",
            "title": "Rates",
            "published": "2024-05-01T10:00:00Z",
            "meta": {"desk": "macro"},
        },
        {"id": "n-2", "text": "<p>Oil fell.</p>"},
    ]
    r = api.client.post("/v1/documents", headers=api.key("acme"), json={"documents": docs})
    assert r.status_code == 202 and r.json()["documents"] == 2
    with api.session() as s:
        path = s.get(Job, r.json()["job_id"]).inputs[0]
    lines = [json.loads(line) for line in open(path, encoding="utf-8")]
    assert [(x["id"], x["text"]) for x in lines] == [("n-1", "Rates rose."), ("n-2", "<p>Oil fell.</p>")]
    assert lines[0]["desk"] == "macro" and lines[0]["published"].startswith("2024-05-01T10:00:00")


@pytest.mark.parametrize(
    "files, code, what",
    [
        ([("big.txt", b"x" * 1001)], 413, "big.txt"),
        ([("a.txt", b"a"), ("b.txt", b"b"), ("c.txt", b"c"), ("d.txt", b"d")], 413, "more than 3 files"),
        ([("a.txt", b"ok"), ("tool.exe", b"MZ")], 415, "tool.exe"),
        ([("noext", b"x")], 415, "(none)"),
        ([(".hidden.txt", b"x")], 422, "hidden"),
        ([("a.txt", b"1"), ("a.txt", b"2")], 422, "twice"),
    ],
)
def test_refused_uploads_say_why_and_leave_nothing_behind(api, files, code, what):
    r = api.client.post("/v1/documents", headers=api.key("acme"), files=_files(*files))
    assert r.status_code == code
    assert what in r.json()["message"] and r.json()["error"]
    assert api.sent == []
    assert not (api.ctx.uploads_dir / "acme").exists()
    assert list((api.ctx.uploads_dir / ".incoming").iterdir()) == []


@pytest.mark.parametrize(
    "content_type, body, code, error",
    [
        ("application/json", b"{not json", 422, "invalid_json"),
        ("application/json", b'{"documents": []}', 422, "invalid_batch"),
        ("application/json", b'{"documents": [{"id": "x"}]}', 422, "invalid_batch"),
        (
            "application/json",
            b'{"documents": [{"id": "x", "text": "a"}, {"id": "x ", "text": "b"}]}',
            422,
            "invalid_batch",
        ),
        ("application/json", b'{"documents": [{"id": "x", "text": "t", "tenant": "other"}]}', 422, "invalid_batch"),
        ("application/json", b'{"documents": [{"id": "x", "text": "t", "meta": {"url": "u"}}]}', 422, "invalid_batch"),
        ("application/json", b'{"documents": [{"id": "x", "text": "' + b"y" * 2100 + b'"}]}', 413, "payload_too_large"),
        ("text/plain", b"hello", 415, "unsupported_media_type"),
        ("", b"", 415, "unsupported_media_type"),
        ("multipart/form-data", b"--x\r\n", 422, "invalid_body"),
        ("multipart/form-data; boundary=zz", b"--zz--\r\n", 422, "no_files"),
    ],
)
def test_bodies_that_are_not_an_upload_are_refused_with_a_json_error(api, content_type, body, code, error):
    headers = {**api.key("acme"), "Content-Type": content_type}
    r = api.client.post("/v1/documents", headers=headers, content=body)
    assert (r.status_code, r.json()["error"]) == (code, error)
    assert api.sent == []


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/v1/jobs"),
        ("get", "/v1/search?q=x"),
        ("post", "/v1/documents"),
        ("get", "/v1/documents"),
        ("get", "/v1/models"),
        ("get", "/v1/index-versions"),
    ],
)
def test_no_key_or_a_bad_or_revoked_key_is_401(api, method, path):
    from pipeline.store import apikeys as keys

    good = api.key("acme")
    with api.session() as s:
        revoked_row, revoked = keys.create_key(s, "acme")
        keys.revoke_key(s, revoked_row.id)
    for headers in (
        {},
        {"X-API-Key": "dpk_nope"},
        {"Authorization": "Bearer " + good["X-API-Key"] + "x"},
        {"X-API-Key": revoked},
    ):
        r = getattr(api.client, method)(path, headers=headers)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    assert api.client.get("/v1/jobs", headers={"Authorization": "Bearer " + good["X-API-Key"]}).status_code == 200


def _seed(api, tenant: str, n: int) -> list[str]:
    ids = []
    with api.session() as s:
        for i in range(n):
            job = repo.create_job(s, tenant, [f"/in/{tenant}/{i}.txt"])
            source = f"/in/{tenant}/{i}.txt"
            s.add(
                Document(
                    id=document_id(tenant, source),
                    tenant=tenant,
                    source=source,
                    content_type="txt",
                    text=f"text {i}",
                    content_hash=f"h{i}",
                    status="indexed",
                    cluster_id="c",
                    chunk_count=2,
                )
            )
            repo.add_dead_letter(s, job, Rejected(source, "read", "empty", "file is 0 bytes"), source)
            ids.append(job.id)
    return ids


def test_jobs_and_documents_of_another_tenant_are_invisible_through_every_route(api):
    acme, globex = api.key("acme"), api.key("globex")
    acme_jobs, globex_jobs = _seed(api, "acme", 3), _seed(api, "globex", 2)
    listed = api.client.get("/v1/jobs", headers=acme).json()
    assert {j["id"] for j in listed["items"]} == set(acme_jobs) and listed["next_cursor"] is None
    first = api.client.get("/v1/jobs?limit=2", headers=acme).json()
    rest = api.client.get("/v1/jobs", headers=acme, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert len(first["items"]) == 2 and len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert {j["id"] for j in first["items"] + rest["items"]} == set(acme_jobs)
    docs = api.client.get("/v1/documents", headers=acme).json()
    assert len(docs["items"]) == 3 and all(d["source"].startswith("/in/acme/") for d in docs["items"])
    other_doc = document_id("globex", "/in/globex/0.txt")
    for path in (f"/v1/jobs/{globex_jobs[0]}", f"/v1/documents/{other_doc}"):
        assert api.client.get(path, headers=acme).status_code == 404
        assert api.client.get(path, headers=globex).status_code == 200
    for action in ("cancel", "replay"):
        assert api.client.post(f"/v1/jobs/{globex_jobs[0]}/{action}", headers=acme).status_code == 404
    assert api.client.get("/v1/documents?name=/in/globex/0.txt", headers=acme).json()["items"] == []
    with api.session() as s:
        assert s.get(Job, globex_jobs[0]).state == JobState.QUEUED
    assert api.sent == []


def test_cancel_then_cancel_again_and_replay_creates_one_new_job(api):
    acme = api.key("acme")
    job_id = _seed(api, "acme", 1)[0]
    detail = api.client.get(f"/v1/jobs/{job_id}", headers=acme).json()
    assert [(d["reason"], d["replayed"]) for d in detail["dead_letters"]] == [("empty", False)]
    r = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=acme)
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    again = api.client.post(f"/v1/jobs/{job_id}/cancel", headers=acme)
    assert again.status_code == 409 and "cancelled" in again.json()["message"]
    replay = api.client.post(f"/v1/jobs/{job_id}/replay", headers=acme)
    assert replay.status_code == 202 and api.sent == [replay.json()["job_id"]]
    with api.session() as s:
        new = s.get(Job, replay.json()["job_id"])
        assert (new.kind, new.tenant, new.inputs) == ("replay", "acme", ["/in/acme/0.txt"])
        assert all(d.replay_job_id == new.id for d in repo.dead_letters(s, job_id))
    assert api.client.post(f"/v1/jobs/{job_id}/replay", headers=acme).status_code == 409


@pytest.fixture()
def broker_prefix():
    """A key prefix of its own on a real Redis (DOCPIPE_TEST_REDIS_URL, else the local one), emptied afterwards."""
    import os
    import uuid

    import redis

    url = os.environ.get("DOCPIPE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    server = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        server.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            raise  # CI runs Redis: a broker that does not answer is a broken build
        pytest.skip(f"no Redis at {url}: {exc}")
    prefix = f"docpipe-test-{uuid.uuid4().hex[:8]}:"
    yield url, prefix
    for key in server.scan_iter(match=f"{prefix}*"):
        server.delete(key)


def test_metrics_count_rows_and_read_queue_depth_under_the_broker_prefix(tmp_path, broker_prefix):
    from celery import Celery

    from workers.client import GPU_QUEUE, INGEST_QUEUE

    url, prefix = broker_prefix
    api = Api(tmp_path, redis_url=url, broker_key_prefix=prefix)

    def sender(key_prefix: str) -> Celery:  # an app of its own: Celery's producer pool keeps its first prefix
        return Celery("probe", broker=url, broker_transport_options={"global_keyprefix": key_prefix})

    # tasks parked where no worker reads: one on a priority level of its own, which kombu keeps in another list
    parked = sender(prefix)
    for priority in (None, None, None, None, 3):
        parked.send_task("docpipe.start_job", args=["0" * 32], queue=INGEST_QUEUE, priority=priority)
    for _ in range(2):
        parked.send_task("docpipe.gpu.index_files", args=["0" * 32, []], queue=GPU_QUEUE)
    sender(f"{prefix}other:").send_task("docpipe.start_job", args=["0" * 32], queue=INGEST_QUEUE)
    _seed(api, "acme", 2)
    with api.session() as s:
        job = s.get(Job, repo.list_jobs(s)[0].id)
        repo.mark_running(s, job)
        embed = JobStats()
        embed["embed"].seconds = 1.5
        embed["embed"].passed(10)
        add_job_stats(s, job.id, embed)
    text = api.client.get("/metrics").text
    assert 'docpipe_queue_depth{queue="ingest"} 5.0' in text  # not the task under another prefix
    assert 'docpipe_queue_depth{queue="gpu"} 2.0' in text and "docpipe_broker_up 1.0" in text
    assert 'docpipe_jobs{state="queued"} 1.0' in text and 'docpipe_jobs{state="running"} 1.0' in text
    assert 'docpipe_documents{status="indexed"} 2.0' in text and "docpipe_chunks_indexed 4.0" in text
    assert 'docpipe_dead_letters{reason="empty",replayed="false"} 2.0' in text
    assert 'docpipe_stage_seconds_total{stage="embed"} 1.5' in text
    assert 'docpipe_stage_items_total{stage="embed"} 10.0' in text
    assert "docpipe_job_queue_wait_seconds_count 1.0" in text


def test_metrics_report_a_broker_that_does_not_answer_and_still_count_rows(tmp_path):
    import socket

    # a server that accepts connections and never answers: the scrape must give up on it, not wait
    with socket.create_server(("127.0.0.1", 0)) as silent:
        api = Api(tmp_path, redis_url=f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        _seed(api, "acme", 1)
        text = api.client.get("/metrics").text
    assert "docpipe_broker_up 0.0" in text and "docpipe_queue_depth{" not in text
    assert 'docpipe_jobs{state="queued"} 1.0' in text


def test_healthz_names_what_is_unreachable(api):
    r = api.client.get("/healthz")
    assert r.status_code == 503
    assert r.json()["failed"] == ["elasticsearch"] and r.json()["checks"]["sql"] == "ok"


def test_openapi_documents_both_upload_bodies_and_the_key(api):
    spec = api.client.get("/openapi.json").json()
    body = spec["paths"]["/v1/documents"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert {"APIKeyHeader", "HTTPBearer"} <= set(spec["components"]["securitySchemes"])


def test_an_unmigrated_database_answers_503_not_500(tmp_path):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from pipeline.config import Settings

    settings = Settings(data_dir=tmp_path / "d", database_url=f"sqlite:///{tmp_path / 'empty.db'}")
    client = TestClient(create_app(settings, enqueue=lambda job_id: None))
    r = client.get("/v1/jobs", headers={"X-API-Key": "dpk_0123456789ab_" + "a" * 43})
    assert r.status_code == 503 and "docpipe db upgrade" in r.json()["message"]
