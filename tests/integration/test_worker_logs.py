"""Workers log JSON lines that carry the job, the task and the tenant of what they were doing."""

from __future__ import annotations

import json

import pytest

from tests.fixtures import article

pytestmark = pytest.mark.integration


def _events(path) -> list[dict]:
    events = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def test_a_real_job_logs_json_lines_with_its_job_task_and_tenant(stack, tmp_path):
    folder = tmp_path / "logged"
    folder.mkdir()
    (folder / "good.txt").write_text(article(80))
    (folder / "empty.txt").write_text("   \n")
    job = stack.run_job([folder], "t-logs")
    assert job.state == "partial", job.error

    logs = stack.data_dir / "logs"
    ingest = [e for e in _events(logs / "worker-ingest.log") if e.get("job_id") == job.id]
    gpu = [e for e in _events(logs / "worker-gpu.log") if e.get("job_id") == job.id]
    started = [e for e in ingest if e["event"] == "job started"]
    letters = [e for e in ingest if e["event"] == "dead letter"]
    finished = [e for e in gpu if e["event"] == "job finished"]
    assert len(started) == 1 and started[0]["task"] == "docpipe.start_job" and started[0]["task_id"]
    assert len(letters) == 1 and letters[0]["reason"] == "empty" and letters[0]["tenant"] == "t-logs"
    assert letters[0]["task"] == "docpipe.read_files" and letters[0]["task_id"] != started[0]["task_id"]
    assert len(finished) == 1 and finished[0]["state"] == "partial" and finished[0]["task_id"]
    assert finished[0]["done"] == 1 and finished[0]["failed"] == 1 and finished[0]["service"] == "worker"
