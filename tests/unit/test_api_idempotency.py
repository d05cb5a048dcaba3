"""Idempotency-Key: a retried POST gets the first answer instead of a second job, on every job-creating route."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pipeline.store import idempotency
from pipeline.store.models import Job
from pipeline.store.models_keys import IdempotentRequest
from tests.unit.api_support import Api


@pytest.fixture
def api(tmp_path):
    return Api(tmp_path)


def _upload(api, headers, name="a.txt", body=b"an article about harbours"):
    return api.client.post("/v1/documents", headers=headers, files=[("files", (name, body, "text/plain"))])


def _jobs(api) -> int:
    with api.session() as s:
        return s.query(Job).count()


def test_a_retried_upload_gets_the_first_answer_and_creates_no_second_job(api):
    key = {**api.key("acme"), "Idempotency-Key": "upload-1"}
    first, retry = _upload(api, key), _upload(api, key)  # a new multipart boundary each time: still a retry
    assert first.status_code == retry.status_code == 202
    assert retry.json() == first.json() and retry.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert _jobs(api) == 1 and api.sent == [first.json()["job_id"]]
    other = _upload(api, {**api.key("acme"), "Idempotency-Key": "upload-2"})
    assert other.json()["job_id"] != first.json()["job_id"] and _jobs(api) == 2


def test_keys_belong_to_a_tenant(api):
    a = _upload(api, {**api.key("acme"), "Idempotency-Key": "k"})
    b = _upload(api, {**api.key("globex"), "Idempotency-Key": "k"})
    assert a.json()["job_id"] != b.json()["job_id"] and _jobs(api) == 2


def test_the_same_key_on_a_different_request_is_refused(api):
    key = {**api.key("acme"), "Idempotency-Key": "batch"}
    first = api.client.post("/v1/documents", headers=key, json={"documents": [{"id": "1", "text": "one"}]})
    assert first.status_code == 202, first.text
    assert (
        api.client.post("/v1/documents", headers=key, json={"documents": [{"id": "1", "text": "one"}]}).json()
        == first.json()
    )
    other = api.client.post("/v1/documents", headers=key, json={"documents": [{"id": "2", "text": "two"}]})
    assert other.status_code == 422 and "different request" in other.json()["message"]
    assert _jobs(api) == 1


def test_a_refused_first_request_frees_its_key_for_the_retry(api):
    key = {**api.key("acme"), "Idempotency-Key": "fix-and-retry"}
    refused = api.client.post("/v1/documents", headers=key, json=[])
    assert refused.status_code >= 400
    assert _upload(api, key).status_code == 202 and _jobs(api) == 1


def test_a_retry_while_the_first_still_runs_waits_and_an_abandoned_claim_is_taken_over(api):
    headers = {**api.key("acme"), "Idempotency-Key": "slow"}
    with api.session() as s:
        assert idempotency.claim(s, "acme", "slow")[0] == idempotency.Claim.NEW
    busy = _upload(api, headers)
    assert busy.status_code == 409 and busy.headers["Retry-After"] == "1" and _jobs(api) == 0
    with api.session() as s:  # the first request's process died long ago without an answer
        s.get(IdempotentRequest, ("acme", "slow")).created_at -= idempotency.STALE + timedelta(seconds=1)
    assert _upload(api, headers).status_code == 202 and _jobs(api) == 1


def test_answers_expire(api):
    headers = {**api.key("acme"), "Idempotency-Key": "old"}
    first = _upload(api, headers).json()["job_id"]
    with api.session() as s:
        s.get(IdempotentRequest, ("acme", "old")).created_at -= idempotency.KEPT
    assert _upload(api, headers).json()["job_id"] != first


def test_a_repair_job_is_idempotent_too(api):
    tasks: list = []
    api.ctx.send_task = lambda name, args: tasks.append((name, args))
    headers = {**api.key("acme"), "Idempotency-Key": "repair-1"}
    a = api.client.post("/v1/index/verify", params={"repair": "true"}, headers=headers)
    b = api.client.post("/v1/index/verify", params={"repair": "true"}, headers=headers)
    assert a.status_code == b.status_code == 202 and a.json() == b.json()
    assert b.headers.get("Idempotent-Replayed") == "true" and _jobs(api) == 1 and len(tasks) == 1
    c = api.client.post("/v1/index/verify", params={"repair": "false"}, headers=headers)
    assert c.status_code == 422  # another query: another request


def test_a_bad_key_or_no_api_key(api):
    r = _upload(api, {**api.key("acme"), "Idempotency-Key": "x" * 256})
    assert r.status_code == 422 and "Idempotency-Key" in r.json()["message"]
    assert _upload(api, {"Idempotency-Key": "anon"}).status_code == 401


def test_every_v1_post_documents_the_header(api):
    doc = api.client.get("/openapi.json").json()
    posts = [(p, m["post"]) for p, m in doc["paths"].items() if "post" in m and p.startswith("/v1/")]
    assert posts
    for path, op in posts:
        assert "Idempotency-Key" in [p["name"] for p in op.get("parameters", [])], path
        assert "409" in op["responses"], path
