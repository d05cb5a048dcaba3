"""/v1/webhooks and the cron fields of /v1/feeds through the real app (TestClient, SQLite; tasks recorded)."""

from __future__ import annotations

import pytest

from pipeline.store import repo
from tests.unit.api_support import Api


@pytest.fixture
def api(tmp_path):
    api = Api(tmp_path)
    api.tasks = []
    api.ctx.send_task = lambda name, args: api.tasks.append((name, *args))
    return api


def test_webhook_routes_register_list_test_and_remove_within_the_tenant(api):
    acme, other = api.key("acme"), api.key("other")
    created = api.client.post(
        "/v1/webhooks", json={"url": "https://hooks.example.com/d", "events": ["failed"]}, headers=acme
    )
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["secret"].startswith("whsec_") and hook["events"] == ["job.failed"]
    listed = api.client.get("/v1/webhooks", headers=acme).json()
    assert [h["id"] for h in listed["items"]] == [hook["id"]] and "secret" not in listed["items"][0]
    assert api.client.get("/v1/webhooks", headers=other).json()["items"] == []
    assert api.client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=other).status_code == 404
    bad = api.client.post("/v1/webhooks", json={"url": "https://x.example/", "events": ["done"]}, headers=acme)
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_webhook"
    assert api.client.post("/v1/webhooks", json={"url": "file:///etc/passwd"}, headers=acme).status_code == 422

    test = api.client.post(f"/v1/webhooks/{hook['id']}/test", headers=acme)
    assert test.status_code == 202 and test.json()["event"] == "webhook.test"
    assert api.tasks == [("docpipe.webhooks.deliver", test.json()["id"])]

    with api.session() as s:  # a job of the tenant, cancelled through the API: its event is sent at once
        job_id = repo.create_job(s, "acme", [], kind="ingest").id
    assert api.client.post(f"/v1/jobs/{job_id}/cancel", headers=acme).status_code in (200, 202)
    log = api.client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=acme).json()["items"]
    assert [d["event"] for d in log] == ["webhook.test"]  # the endpoint takes only job.failed
    api.client.post("/v1/webhooks", json={"url": "https://hooks.example.com/all"}, headers=acme)
    with api.session() as s:
        job_id = repo.create_job(s, "acme", [], kind="ingest").id
    api.client.post(f"/v1/jobs/{job_id}/cancel", headers=acme)
    assert len(api.tasks) == 2 and api.tasks[-1][0] == "docpipe.webhooks.deliver"

    assert api.client.delete(f"/v1/webhooks/{hook['id']}", headers=other).status_code == 404
    assert api.client.delete(f"/v1/webhooks/{hook['id']}", headers=acme).status_code == 204
    assert [h["url"] for h in api.client.get("/v1/webhooks", headers=acme).json()["items"]] == [
        "https://hooks.example.com/all"
    ]


def test_feeds_take_a_cron_with_a_time_zone_and_refuse_bad_ones(api):
    acme = api.key("acme")
    body = {"url": "https://feeds.example/a.xml", "cron": "0 6 * * *", "tz": "Europe/Berlin"}
    added = api.client.post("/v1/feeds", json=body, headers=acme)
    assert added.status_code == 201, added.text
    rec = added.json()
    assert (rec["cron"], rec["timezone"], rec["every"]) == ("0 6 * * *", "Europe/Berlin", None)
    assert rec["next_run_at"][11:16] in ("04:00", "05:00")  # 06:00 in Berlin, summer or winter
    for bad, problem in (({"cron": "0 6 * *"}, "five fields"), ({"cron": "0 6 * * *", "tz": "Moon/Base"}, "time zone")):
        answer = api.client.post("/v1/feeds", json={"url": "https://feeds.example/b.xml", **bad}, headers=acme)
        assert answer.status_code == 422 and problem in answer.json()["message"]
