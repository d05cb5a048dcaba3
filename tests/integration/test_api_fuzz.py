"""A schemathesis run over the whole OpenAPI document against the real server and services: no 5xx."""

from __future__ import annotations

import re
import subprocess
import sys
from contextlib import contextmanager

import pytest
from sqlalchemy import select

from pipeline.store.db import session_scope
from pipeline.store.models import Job, JobState
from pipeline.store.repo import cancel_job
from tests.fixtures import article
from tests.integration.api_support import api_client, key_for, serve, upload, wait_job

pytestmark = pytest.mark.integration


@contextmanager
def _cancelled_afterwards(stack, tenant: str):
    """The fuzzed jobs were never sent: cancel them, or the shared stack's revive sweep would run them later."""
    try:
        yield
    finally:
        with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
            for job in s.scalars(select(Job).where(Job.tenant == tenant, Job.state.not_in(JobState.FINAL))):
                cancel_job(s, job)


def test_fuzzing_every_operation_never_gets_a_server_error(stack, tmp_path):
    from api.app import create_app

    key = key_for(stack, "fuzz")
    with api_client(stack) as real:  # something to find, so searches reach hits and highlighting
        assert wait_job(real, key, upload(real, key, {"fuzz.txt": article(900)}))["state"] == "succeeded"
    # fuzzed uploads create jobs nobody needs to run: they stay queued instead of loading the workers
    app = create_app(stack.settings(), enqueue=lambda job_id: None)
    with serve(app) as url, _cancelled_afterwards(stack, "fuzz"):
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                f"{url}/openapi.json",
                "--checks",
                "not_a_server_error",
                "--header",
                f"X-API-Key: {key['X-API-Key']}",
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                "30",
                "--workers",
                "1",
                "--request-timeout",
                "60",
                "--suppress-health-check",
                "all",
                "--no-color",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=1500,
        )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    cases = re.search(r"(\d+) generated, \1 passed", run.stdout)
    assert cases and int(cases.group(1)) >= 200, run.stdout[-3000:]  # it did exercise the API, every case
    operations = sum(len(methods) for methods in app.openapi()["paths"].values())
    assert re.search(r"Tested: (\d+)", run.stdout).group(1) == str(operations)
