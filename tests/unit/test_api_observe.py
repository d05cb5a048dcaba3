"""The API's request ids and JSON request log lines, and /metrics updated incrementally (each finished job
observed once), with HTTP, worker and queue-latency families."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta

from pipeline.jobs import heartbeat
from pipeline.jobs.stats import JobStats, add_job_stats
from pipeline.logs import configure_logging
from pipeline.store import repo
from pipeline.store.models import Job, JobState
from pipeline.types import utcnow
from tests.unit.api_support import Api


def _sample(text: str, name: str) -> float | None:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else None


def test_each_request_gets_an_id_returned_in_its_response_and_logged_as_json(tmp_path):
    api = Api(tmp_path)
    key = api.key("acme")
    lines = io.StringIO()
    configure_logging("api", stream=lines)

    given = api.client.get("/v1/jobs", headers={**key, "X-Request-ID": "req-42.a"})
    made = api.client.get("/v1/jobs", headers=key)
    forged = api.client.get("/v1/jobs", headers={**key, "X-Request-ID": "x" * 500})

    assert given.status_code == 200 and given.headers["X-Request-ID"] == "req-42.a"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-ID"])
    assert forged.headers["X-Request-ID"] != "x" * 500
    logged = [json.loads(line) for line in lines.getvalue().splitlines()]
    requests = {e["request_id"]: e for e in logged if e["event"] == "request"}
    assert requests["req-42.a"] == {
        **requests["req-42.a"],
        "route": "/v1/jobs",
        "status": 200,
        "tenant": "acme",
        "service": "api",
        "method": "GET",
    }
    assert made.headers["X-Request-ID"] in requests


def _finish(api: Api, tenant: str, embed_seconds: float) -> None:
    with api.session() as s:
        job = repo.create_job(s, tenant, ["/in/a.txt"])
        repo.mark_running(s, job)
        stats = JobStats()
        stats["embed"].seconds = embed_seconds
        add_job_stats(s, job.id, stats)
        job = s.get(Job, job.id)
        job.state, job.finished_at = JobState.SUCCEEDED, job.started_at + timedelta(seconds=3)


def test_metrics_observe_each_finished_job_once_and_expose_http_worker_and_latency_families(tmp_path):
    api = Api(tmp_path)
    _finish(api, "acme", 1.5)
    with api.session() as s:
        repo.create_job(s, "acme", ["/in/waiting.txt"])  # still queued: the oldest waiting job
        heartbeat.beat(s, "here:1", "worker-ingest-1@here")
        heartbeat.beat(s, "here:2", "worker-ingest-1@here")
        heartbeat.beat(s, "gone:3", "worker-gpu-1@gone", now=utcnow() - timedelta(hours=1))

    first = api.client.get("/metrics").text
    second = api.client.get("/metrics").text
    for text in (first, second):
        assert _sample(text, "docpipe_job_run_seconds_count") == 1.0
        assert _sample(text, "docpipe_job_run_seconds_sum") == 3.0
        assert _sample(text, 'docpipe_job_stage_seconds_count{stage="embed"}') == 1.0
        assert _sample(text, "docpipe_job_queue_wait_seconds_count") == 1.0
        assert _sample(text, "docpipe_workers_alive") == 1.0
        assert _sample(text, "docpipe_worker_processes_alive") == 2.0
        assert _sample(text, "docpipe_queue_oldest_job_seconds") >= 0.0
    assert _sample(second, 'docpipe_http_requests_total{method="GET",route="/metrics",status="200"}') == 1.0
    assert 'docpipe_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/metrics"} 1.0' in second

    _finish(api, "acme", 0.5)
    third = api.client.get("/metrics").text
    assert _sample(third, "docpipe_job_run_seconds_count") == 2.0
    assert _sample(third, 'docpipe_job_stage_seconds_count{stage="embed"}') == 2.0
    assert _sample(third, 'docpipe_stage_seconds_total{stage="embed"}') == 2.0
