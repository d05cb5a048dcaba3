"""Every answer of the API matches the OpenAPI document it publishes: status codes, content types, headers and
bodies (schemathesis' response-conformance checks over every operation), against the real server and services.

One run does both jobs: no request may get a 5xx (fuzzing), and every answer must be one the document promises
(a dozen examples per operation, plus schemathesis' coverage phase: boundaries and each documented alternative).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from sqlalchemy import select

from pipeline.store.db import session_scope
from pipeline.store.models import Job, JobState
from pipeline.store.repo import cancel_job
from tests.fixtures import article
from tests.integration.api_support import api_client, key_for, serve, upload, wait_job

pytestmark = pytest.mark.integration

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
TENANT = "conformance"  # not an admin tenant: reindex and rollback answer their documented 403


def test_every_answer_matches_the_published_schema(stack, tmp_path):
    from api.app import create_app

    key = key_for(stack, TENANT)
    with api_client(stack) as real:  # a document, so searches and lists answer with items to check
        assert wait_job(real, key, upload(real, key, {"conformance.txt": article(901)}))["state"] == "succeeded"
    # jobs the run creates are never sent: they stay queued, and are cancelled after it
    app = create_app(stack.settings(), enqueue=lambda job_id: None, send_task=lambda name, args: None)
    try:
        with serve(app) as url:
            run = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "schemathesis.cli",
                    "run",
                    f"{url}/openapi.json",
                    "--checks",
                    ",".join(CHECKS),
                    "--header",
                    f"X-API-Key: {key['X-API-Key']}",
                    "--phases",
                    "examples,coverage,fuzzing",
                    "--max-examples",
                    "12",
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
                timeout=900,
            )
    finally:
        with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
            for job in s.scalars(select(Job).where(Job.tenant == TENANT, Job.state.not_in(JobState.FINAL))):
                cancel_job(s, job)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    cases = re.search(r"(\d+) generated, \1 passed", run.stdout)
    assert cases and int(cases.group(1)) >= 300, run.stdout[-3000:]  # it exercised the API, and every case passed
    operations = sum(len(methods) for methods in app.openapi()["paths"].values())
    assert re.search(r"Tested: (\d+)", run.stdout).group(1) == str(operations)
