"""The API in front of the test stack's real workers, noida-db and SQL."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from fastapi.testclient import TestClient

from pipeline.store.models import JobState


def api_client(stack, enqueue=None, **overrides) -> TestClient:
    from api.app import create_app

    settings = stack.settings()
    if overrides:
        settings = settings.model_copy(update=overrides)
    return TestClient(create_app(settings, enqueue))


def key_for(stack, tenant: str) -> dict:
    from pipeline.store import apikeys as keys
    from pipeline.store.db import session_scope

    with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as session:
        _, key = keys.create_key(session, tenant)
    return {"X-API-Key": key}


def wait_job(client: TestClient, headers: dict, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=headers).json()
        if job["state"] in JobState.FINAL:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish within {timeout}s")


def upload(client: TestClient, headers: dict, files: dict[str, str | bytes]) -> str:
    parts = [
        ("files", (name, body.encode() if isinstance(body, str) else body, "application/octet-stream"))
        for name, body in files.items()
    ]
    r = client.post("/v1/documents", headers=headers, files=parts)
    assert r.status_code == 202, r.text
    return r.json()["job_id"]


@contextmanager
def serve(app):
    """The app on a real uvicorn server (HTTP over a socket) in a thread of this process."""
    import uvicorn

    from cli.localstack.processes import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
