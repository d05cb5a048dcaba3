"""A job's per-stage accounts through /v1 (published in the schema) and on the dashboard's job page."""

from __future__ import annotations

from api.auth import COOKIE
from pipeline.jobs.stats import JobStats, add_job_stats
from pipeline.store import repo
from tests.unit.api_support import Api


def _job_with_stages(api: Api, tenant: str) -> str:
    stats = JobStats()
    stats["read"].passed(4)
    stats["read"].drop("too_large")
    stats["dedup"].passed(3)
    stats["dedup"].drop("exact_duplicate")
    stats["chunk"].items_in, stats["chunk"].items_out, stats["chunk"].seconds = 3, 9, 0.25
    with api.session() as s:
        job = repo.create_job(s, tenant, ["/in/a.txt"])
        add_job_stats(s, job.id, stats)
        return job.id


def test_the_job_record_lists_its_stages_in_pipeline_order(tmp_path):
    api = Api(tmp_path)
    key = api.key("acme")
    job_id = _job_with_stages(api, "acme")
    stages = api.client.get(f"/v1/jobs/{job_id}", headers=key).json()["stages"]
    assert stages == [
        {"stage": "read", "seconds": 0.0, "items_in": 5, "items_out": 4, "dropped": {"too_large": 1}},
        {"stage": "dedup", "seconds": 0.0, "items_in": 4, "items_out": 3, "dropped": {"exact_duplicate": 1}},
        {"stage": "chunk", "seconds": 0.25, "items_in": 3, "items_out": 9, "dropped": {}},
    ]
    spec = api.client.get("/openapi.json").json()["components"]["schemas"]
    assert "stages" in spec["JobDetail"]["required"]
    assert set(spec["StageOut"]["properties"]) == {"stage", "seconds", "items_in", "items_out", "dropped"}


def test_an_old_job_shows_the_stage_seconds_it_kept_in_metrics(tmp_path):
    api = Api(tmp_path)
    key = api.key("acme")
    with api.session() as s:
        job = repo.create_job(s, "acme", ["/in/a.txt"])
        job.metrics = {"embed": {"seconds": 2.5, "items": 6}, "read": {"seconds": 0.5, "items": 0}}
        job_id = job.id
    stages = api.client.get(f"/v1/jobs/{job_id}", headers=key).json()["stages"]
    assert [(s["stage"], s["seconds"], s["items_in"]) for s in stages] == [("read", 0.5, 0), ("embed", 2.5, 6)]


def test_the_dashboard_job_page_shows_each_stage_with_its_drops(tmp_path):
    api = Api(tmp_path)
    key = api.key("acme")["X-API-Key"]
    job_id = _job_with_stages(api, "acme")
    api.client.cookies.set(COOKIE, key)
    page = api.client.get(f"/ui/jobs/{job_id}")
    assert page.status_code == 200
    table = page.text.split('<table class="stages">', 1)[1].split("</table>", 1)[0]
    rows = table.split("<tr>")[2:]  # after the header row
    assert [r.split("<td>", 2)[1].split("<", 1)[0] for r in rows] == ["read", "dedup", "chunk"]
    assert '<span class="reason">exact_duplicate</span> 1' in rows[1]
    assert '<td class="num">9</td>' in rows[2]


def test_the_cli_prints_the_record_the_api_returns_with_its_stages(tmp_path):
    from datetime import datetime

    from cli.common import JobView
    from pipeline.types import Rejected

    api = Api(tmp_path)
    key = api.key("acme")
    job_id = _job_with_stages(api, "acme")
    upload = str(api.ctx.uploads_dir / "acme" / "a.txt")
    with api.session() as s:
        job = repo.get_job(s, job_id)
        repo.add_dead_letter(s, job, Rejected(upload, "read", "empty", "file is 0 bytes"), upload)
    with api.session() as s:
        printed = JobView().record(s, repo.get_job(s, job_id))  # what `docpipe ingest --json` prints
    shown = api.client.get(f"/v1/jobs/{job_id}", headers=key).json()
    for field in ("id", "tenant", "kind", "state", "counters", "metrics", "error", "stages"):
        assert printed[field] == shown[field], field
    assert datetime.fromisoformat(printed["created_at"]) == datetime.fromisoformat(shown["created_at"])
    assert printed["inputs"] == ["/in/a.txt"] and "inputs" not in shown  # server paths stay on the server
    assert [d["source"] for d in shown["dead_letters"]] == ["a.txt"]  # the upload's name, not its path
