"""Job webhooks through the real stack: a finished ingest job's event reaches the tenant's endpoint signed per
Standard Webhooks (checked with the spec's reference library), once, after a refused first attempt; a partial
job sends `job.partial`; an endpoint that asked only for failures hears nothing of either."""

from __future__ import annotations

import time
import uuid

import pytest
from standardwebhooks.webhooks import Webhook

from pipeline.store.db import session_scope
from pipeline.webhooks.endpoints import add_endpoint
from tests.hooks import Hook

pytestmark = pytest.mark.integration


def _wait_for(hook: Hook, count: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while len(hook.received) < count:
        assert time.monotonic() < deadline, f"the endpoint got {len(hook.received)} POSTs, expected {count}"
        time.sleep(0.2)


def test_job_events_reach_their_endpoint_signed_once_after_a_retry(stack, tmp_path):
    tenant = f"t-hooks-{uuid.uuid4().hex[:6]}"
    good = tmp_path / "good.txt"
    good.write_text("Webhooks tell a client that its job ended, without polling. " * 5)
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7 not really a pdf")
    with Hook([500]) as hook, Hook() as failures_only:
        with session_scope(stack.env["DOCPIPE_DATABASE_URL"]) as s:
            secret = add_endpoint(s, tenant, hook.url).secret
            add_endpoint(s, tenant, failures_only.url, ["failed"])

        succeeded = stack.run_job([good], tenant)
        assert succeeded.state == "succeeded"
        _wait_for(hook, 2)  # refused once, then taken on the retry

        partial = stack.run_job([good, broken], tenant)
        assert partial.state == "partial"
        _wait_for(hook, 3)
        time.sleep(2)  # a duplicate send would land meanwhile

    statuses = [status for status, _, _ in hook.received]
    assert statuses == [500, 200, 200]
    verified = []
    for raw, headers in hook.raw_bodies:
        body = Webhook(secret).verify(raw, headers)  # raises on a bad signature
        lower = {k.lower(): v for k, v in headers.items()}
        verified.append((lower["webhook-id"], body["type"], body["data"]["id"], body["data"]["state"]))
    # the retry carries the same message id as the refused first attempt
    assert verified[0] == verified[1]
    assert [v[1:] for v in verified[1:]] == [
        ("job.succeeded", succeeded.id, "succeeded"),
        ("job.partial", partial.id, "partial"),
    ]
    assert failures_only.received == []
