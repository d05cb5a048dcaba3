"""The API over real workers: upload → job → search, re-upload, filters, tenant isolation, cancel, replay,
health and metrics."""

from __future__ import annotations

import json
import random

import pytest
from celery import Celery
from sqlalchemy import select

from pipeline.store.db import session_scope
from pipeline.store.models import Document, Job, JobFile
from tests.fixtures import WORDS, article
from tests.integration.api_support import api_client, key_for, upload, wait_job

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(stack):
    with api_client(stack) as c:
        yield c


def _sql(stack):
    return session_scope(stack.env["DOCPIPE_DATABASE_URL"])


def test_upload_ingest_search_filter_and_reupload(stack, client):
    h = key_for(stack, "up-a")
    job_id = upload(
        client,
        h,
        {
            "harbour.txt": article(101) + " Quokka dockers strike at the harbour.",
            "notes.md": "# Notes\n\n" + article(102),
        },
    )
    job = wait_job(client, h, job_id)
    assert job["state"] == "succeeded" and job["counters"]["done"] == 2 and job["progress"] == 1.0
    batch = {
        "documents": [
            {
                "id": "wire-1",
                "text": article(103) + " Quokka exports rose in May.",
                "published": "2024-05-02T08:00:00Z",
            },
            {"id": "wire-2", "text": article(104), "published": "2023-01-10T08:00:00Z"},
        ]
    }
    r = client.post("/v1/documents", headers=h, json=batch)
    assert wait_job(client, h, r.json()["job_id"])["state"] == "succeeded"

    for mode in ("bm25", "knn", "hybrid"):
        hits = client.get("/v1/search", headers=h, params={"q": "quokka dockers strike", "mode": mode, "k": 5}).json()[
            "hits"
        ]
        assert hits[0]["name"] == "harbour.txt", (mode, hits)
    top = client.get("/v1/search", headers=h, params={"q": "quokka dockers", "mode": "bm25"}).json()["hits"][0]
    assert any("<mark>Quokka</mark>" in f and "<mark>dockers</mark>" in f for f in top["highlights"])

    only = client.get("/v1/search", headers=h, params={"q": "quokka", "mode": "bm25", "source": "notes.md"})
    assert {x["name"] for x in only.json()["hits"]} <= {"notes.md"}
    may = client.get(
        "/v1/search",
        headers=h,
        params={"q": "quokka", "mode": "hybrid", "published_from": "2024-01-01", "published_to": "2024-12-31"},
    )
    assert {x["source"] for x in may.json()["hits"]} == {"wire-1"}

    again = upload(client, h, {"harbour.txt": article(105) + " Wombats now run the harbour cafe."})
    assert wait_job(client, h, again)["counters"]["done"] == 1
    docs = client.get("/v1/documents", headers=h, params={"name": "harbour.txt"}).json()
    assert (
        len(docs["items"]) == 1
        and "Wombats" in client.get(f"/v1/documents/{docs['items'][0]['id']}", headers=h).json()["text"]
    )
    stale = client.get("/v1/search", headers=h, params={"q": "dockers strike", "mode": "bm25"}).json()["hits"]
    assert all(x["name"] != "harbour.txt" for x in stale)


def test_two_tenants_with_overlapping_content_never_see_each_other(stack, client):
    a, b = key_for(stack, "iso-a"), key_for(stack, "iso-b")
    shared = {f"shared-{i}.txt": article(200 + i) for i in range(4)}
    for headers, own in ((a, {"only-a.txt": article(300)}), (b, {"only-b.txt": article(301)})):
        assert wait_job(client, headers, upload(client, headers, {**shared, **own}))["state"] == "succeeded"
    with _sql(stack) as s:
        owned = {t: set(s.scalars(select(Document.id).where(Document.tenant == t))) for t in ("iso-a", "iso-b")}
    assert len(owned["iso-a"]) == len(owned["iso-b"]) == 5 and not owned["iso-a"] & owned["iso-b"]

    rng = random.Random(7)
    seen = {"iso-a": set(), "iso-b": set()}
    for _ in range(25):
        q = " ".join(rng.sample(WORDS, rng.randint(1, 3)))
        for mode in ("bm25", "knn", "hybrid"):
            for tenant, headers in (("iso-a", a), ("iso-b", b)):
                hits = client.get(
                    "/v1/search", headers=headers, params={"q": q, "mode": mode, "k": rng.randint(1, 20)}
                ).json()["hits"]
                assert {x["doc_id"] for x in hits} <= owned[tenant], (tenant, mode, q)
                seen[tenant] |= {x["doc_id"] for x in hits}
    # the queries did reach the shared content of both tenants, so isolation was actually exercised
    assert len(seen["iso-a"]) >= 4 and len(seen["iso-b"]) >= 4

    for tenant, headers, other in (("iso-a", a, "iso-b"), ("iso-b", b, "iso-a")):
        jobs = client.get("/v1/jobs", headers=headers).json()["items"]
        assert jobs and {j["tenant"] for j in jobs} == {tenant}
        docs = client.get("/v1/documents", headers=headers, params={"limit": 500}).json()
        assert {d["id"] for d in docs["items"]} == owned[tenant]
        for doc_id in owned[other]:
            assert client.get(f"/v1/documents/{doc_id}", headers=headers).status_code == 404


def test_a_job_cancelled_before_it_starts_does_no_work(stack, client):
    held: list[str] = []
    h = key_for(stack, "cancel-a")
    with api_client(stack, enqueue=held.append) as holding:
        job_id = upload(holding, h, {"c.txt": article(400)})
    assert client.post(f"/v1/jobs/{job_id}/cancel", headers=h).json()["state"] == "cancelled"
    from workers.tasks_ingest import start_job

    start_job.delay(job_id)
    # the ingest worker takes tasks in order: once a later job ended, the cancelled one's task was consumed
    later = upload(client, h, {"d.txt": article(401)})
    assert wait_job(client, h, later)["state"] == "succeeded"
    job = client.get(f"/v1/jobs/{job_id}", headers=h).json()
    assert job["state"] == "cancelled" and job["counters"]["total"] == 0
    with _sql(stack) as s:
        assert s.scalars(select(JobFile).where(JobFile.job_id == job_id)).all() == []
        assert s.scalars(select(Document).where(Document.last_job_id == job_id)).all() == []


def test_replay_reingests_fixed_files_as_a_new_job(stack, client):
    h = key_for(stack, "replay-a")
    job_id = upload(client, h, {"good.txt": article(500), "bad.json": "{broken"})
    job = wait_job(client, h, job_id)
    assert job["state"] == "partial"
    letter = client.get(f"/v1/jobs/{job_id}", headers=h).json()["dead_letters"][0]
    assert (letter["source"], letter["reason"], letter["replayed"]) == ("bad.json", "invalid_json", False)
    with _sql(stack) as s:
        path = next(p for p in s.get(Job, job_id).inputs if p.endswith("bad.json"))
    open(path, "w").write(json.dumps({"id": "fixed-1", "text": article(501)}))  # the operator fixes the file
    r = client.post(f"/v1/jobs/{job_id}/replay", headers=h)
    assert r.status_code == 202 and r.json()["files"] == ["bad.json"]
    replay = wait_job(client, h, r.json()["job_id"])
    assert (replay["kind"], replay["state"], replay["counters"]["done"]) == ("replay", "succeeded", 1)
    letters = client.get(f"/v1/jobs/{job_id}", headers=h).json()["dead_letters"]
    assert [(d["replayed"], d["replay_job_id"]) for d in letters] == [(True, replay["id"])]
    assert client.post(f"/v1/jobs/{job_id}/replay", headers=h).status_code == 409


def test_healthz_and_metrics_read_the_real_services(stack, client):
    ok = client.get("/healthz")
    assert ok.status_code == 200 and ok.json()["checks"] == {"sql": "ok", "elasticsearch": "ok", "redis": "ok"}
    with api_client(stack, elasticsearch_url="http://127.0.0.1:9") as broken:
        down = broken.get("/healthz")
        assert down.status_code == 503 and down.json()["failed"] == ["elasticsearch"]

    text = client.get("/metrics").text
    with _sql(stack) as s:
        indexed = len(s.scalars(select(Document.id).where(Document.status == "indexed")).all())
    assert f'docpipe_documents{{status="indexed"}} {float(indexed)}' in text
    assert "docpipe_job_run_seconds_count" in text and "docpipe_broker_up 1.0" in text

    # three tasks parked under a prefix no worker reads: the depth the API reports is the broker's
    prefix = f"{stack.settings().broker_key_prefix}parked:"
    probe = Celery("probe", broker=stack.settings().redis_url, broker_transport_options={"global_keyprefix": prefix})
    for _ in range(3):
        probe.send_task("docpipe.start_job", args=["0" * 32], queue="ingest")
    try:
        with api_client(stack, broker_key_prefix=prefix) as parked:
            assert 'docpipe_queue_depth{queue="ingest"} 3.0' in parked.get("/metrics").text
    finally:
        with probe.connection_for_write() as conn:
            conn.default_channel.client.delete(f"{prefix}ingest")
