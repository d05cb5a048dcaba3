"""Job webhooks: the outbox row a job end writes, signing checked by the spec's reference library, real POSTs to a
receiver on a local server thread (a 500 first, then retried), and the SSRF guard."""

from __future__ import annotations

import http.server
import ipaddress
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from pipeline.errors import InvalidWebhook
from pipeline.store import job_events, repo
from pipeline.store.db import session_scope
from pipeline.store.models import Job, JobState
from pipeline.store.models_webhooks import DeliveryState, WebhookDelivery
from pipeline.types import utcnow
from pipeline.webhooks import DeliveryPolicy, add_endpoint, claim, record_attempt, send_claimed, sign
from pipeline.webhooks.deliveries import list_deliveries
from pipeline.webhooks.endpoints import queue_test_event, remove_endpoint
from pipeline.webhooks.signing import new_secret

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


class Receiver:
    """An HTTP server on 127.0.0.1 that answers POSTs with the statuses queued, then 200, and keeps each request."""

    def __init__(self, statuses: list[int]):
        self.statuses, self.requests = list(statuses), []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server hook's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body, self.path))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/docpipe"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_exc):
        self.server.shutdown()
        self.server.server_close()


def _job(session, tenant="acme", state=JobState.RUNNING) -> str:
    job = repo.create_job(session, tenant, [], kind="ingest")
    job.state = state
    return job.id


def _deliveries(url):
    with session_scope(url) as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.event)))


def test_a_signature_verifies_with_the_reference_library_and_a_tampered_body_does_not():
    secret = new_secret()
    assert secret.startswith("whsec_")
    body = b'{"type":"job.succeeded"}'
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(utcnow().timestamp()))}
    headers["webhook-signature"] = sign(secret, "msg_1", int(headers["webhook-timestamp"]), body)
    assert Webhook(secret).verify(body, headers) == {"type": "job.succeeded"}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"type":"job.failed"}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


def test_a_job_end_writes_one_delivery_per_subscribed_endpoint_and_never_twice(url):
    with session_scope(url) as session:
        every = add_endpoint(session, "acme", "https://hooks.example.com/all").id
        only_failed = add_endpoint(session, "acme", "https://hooks.example.com/failed", ["failed"]).id
        add_endpoint(session, "other", "https://hooks.example.com/other")
        job_id = _job(session)
    # two runs of the finishing task that both read the job while it was running: the second is a repeat
    first, second = session_scope(url), session_scope(url)
    with first as a, second as b:
        job_a, job_b = a.get(Job, job_id), b.get(Job, job_id)
        job_a.state = JobState.SUCCEEDED
        a.commit()
        job_b.state = JobState.SUCCEEDED
    rows = _deliveries(url)
    assert [(r.endpoint_id, r.event, r.job_id) for r in rows] == [(every, "job.succeeded", job_id)]
    assert rows[0].payload["data"]["state"] == "succeeded" and rows[0].payload["type"] == "job.succeeded"
    with session_scope(url) as session:
        repo.fail_job(session, job_id, "boom")  # a final job is not failed again: no event
        job2 = _job(session)
    with session_scope(url) as session:
        repo.fail_job(session, job2, "boom")
    events = sorted((r.endpoint_id, r.event) for r in _deliveries(url) if r.job_id == job2)
    assert events == sorted([(every, "job.failed"), (only_failed, "job.failed")])


def test_the_committed_deliveries_reach_the_registered_sender_and_a_rollback_sends_none(url):
    got: list[list[str]] = []
    job_events.on_committed(got.append)
    try:
        with session_scope(url) as session:
            add_endpoint(session, "acme", "https://hooks.example.com/x")
            job_id = _job(session)
        with pytest.raises(RuntimeError), session_scope(url) as session:
            session.get(Job, job_id).state = JobState.CANCELLED
            session.flush()
            raise RuntimeError("the transaction rolls back")
        assert got == [] and _deliveries(url) == []
        with session_scope(url) as session:
            repo.cancel_job(session, session.get(Job, job_id))
        assert got == [[d.id for d in _deliveries(url)]] and len(got[0]) == 1
    finally:
        job_events._notifiers.remove(got.append)


def _attempt(url, delivery_id, policy, now):
    with session_scope(url) as session:
        claimed = claim(session, delivery_id, now, policy)
    if claimed is None:
        return None, None
    answer = send_claimed(claimed, policy, now)
    with session_scope(url) as session:
        return answer, record_attempt(session, claimed, answer, now, policy)


def test_a_delivery_is_signed_retried_after_a_500_and_logged(url):
    policy = DeliveryPolicy(timeout=5, max_attempts=3, retry_base=30, allow=LOOPBACK)
    with Receiver([500]) as receiver:
        with session_scope(url) as session:
            endpoint = add_endpoint(session, "acme", receiver.url)
            secret, endpoint_id = endpoint.secret, endpoint.id
            job_id = _job(session)
        with session_scope(url) as session:
            repo.fail_job(session, job_id, "no input")
        (delivery,) = _deliveries(url)
        now = utcnow()
        answer, delay = _attempt(url, delivery.id, policy, now)
        assert (answer.status, delay) == (500, 30)
        assert _attempt(url, delivery.id, policy, now + timedelta(seconds=29)) == (None, None)  # not due yet
        answer, delay = _attempt(url, delivery.id, policy, now + timedelta(seconds=31))
        assert (answer.status, delay) == (200, None)
        assert _attempt(url, delivery.id, policy, now + timedelta(days=1)) == (None, None)  # delivered: never again
    assert len(receiver.requests) == 2
    for headers, body, path in receiver.requests:
        payload = Webhook(secret).verify(body, headers)
        assert path == "/hooks/docpipe" and headers["webhook-id"] == f"msg_{delivery.id}"
        assert payload["type"] == "job.failed" and payload["data"]["id"] == job_id
        assert payload["data"]["error"] == "no input"
    with session_scope(url) as session:
        (logged,) = list_deliveries(session, endpoint_id)
        assert (logged.state, logged.attempts, logged.status_code, logged.last_error) == ("delivered", 2, 200, None)


def test_private_addresses_are_refused_unless_allowed_and_attempts_run_out(url):
    with Receiver([503, 503]) as receiver:
        with session_scope(url) as session:
            endpoint = add_endpoint(session, "acme", receiver.url)
            refused = queue_test_event(session, endpoint, utcnow()).id
            exhausted = queue_test_event(session, endpoint, utcnow()).id
        answer, delay = _attempt(url, refused, DeliveryPolicy(), utcnow())
        assert answer.refused and delay is None and "DOCPIPE_WEBHOOK_ALLOW_NETWORKS" in answer.error
        policy = DeliveryPolicy(max_attempts=2, retry_base=1, allow=LOOPBACK)
        now = utcnow()
        assert _attempt(url, exhausted, policy, now)[1] == 1
        assert _attempt(url, exhausted, policy, now + timedelta(seconds=2))[1] is None
    assert len(receiver.requests) == 2  # the refused one never connected
    states = {d.id: (d.state, d.attempts, d.status_code) for d in _deliveries(url)}
    assert states[refused] == (DeliveryState.FAILED, 1, None)
    assert states[exhausted] == (DeliveryState.FAILED, 2, 503)


def test_endpoints_validate_their_input_and_take_their_log_along(url):
    with session_scope(url) as session:
        for bad_url in ("ftp://example.com/x", "http://user:pw@example.com/", "not a url"):
            with pytest.raises(InvalidWebhook):
                add_endpoint(session, "acme", bad_url)
        with pytest.raises(InvalidWebhook, match="job.succeeded"):
            add_endpoint(session, "acme", "https://example.com/h", ["job.finished"])
        endpoint = add_endpoint(session, "acme", "https://example.com/h", ["failed", "job.failed", "cancelled"])
        assert endpoint.events == ["job.failed", "job.cancelled"]
        queue_test_event(session, endpoint, utcnow())
        remove_endpoint(session, endpoint)
    assert _deliveries(url) == []


def test_the_policy_backs_off_exponentially_up_to_its_cap():
    policy = DeliveryPolicy(retry_base=5, retry_max=600)
    assert [policy.retry_delay(n) for n in range(1, 6)] == [5, 20, 80, 320, 600]


def test_alert_webhooks_are_signed_the_same_way():
    from pipeline.monitor.webhooks import post_json

    secret = new_secret()
    with Receiver([]) as receiver:
        ok, tries, error = post_json(receiver.url, {"id": 7, "entity": "ACME"}, secret=secret, attempts=1)
    assert (ok, tries, error) == (True, 1, None)
    ((headers, body, _path),) = receiver.requests
    assert Webhook(secret).verify(body, headers) == {"id": 7, "entity": "ACME"}
    assert headers["webhook-id"] == "msg_alert_7"
