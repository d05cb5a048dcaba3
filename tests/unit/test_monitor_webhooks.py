"""Webhook POSTs: retried after a 5xx or a dead host, not after a 4xx; the alert id travels along."""

import pytest

from cli.localstack.processes import free_port
from pipeline.errors import ConfigError
from pipeline.monitor.webhooks import post_json, webhook_urls
from tests.hooks import Hook

PAYLOAD = {"id": 7, "entity": "AAPL", "negative_share": 0.8}


def test_retry_after_a_server_error_then_delivered_once():
    waits = []
    with Hook([500]) as hook:
        ok, attempts, error = post_json(hook.url, PAYLOAD, attempts=3, backoff=0.25, sleep=waits.append)
    assert (ok, attempts, error) == (True, 2, None)
    assert [status for status, _, _ in hook.received] == [500, 200]
    assert all(body == PAYLOAD for _, body, _ in hook.received)
    assert hook.received[-1][2]["X-Docpipe-Alert"] == "7"
    assert waits == [0.25]


def test_client_error_is_not_retried():
    with Hook([404, 404]) as hook:
        assert post_json(hook.url, PAYLOAD, attempts=3, sleep=lambda s: None) == (False, 1, "HTTP 404")
    assert len(hook.received) == 1


def test_unreachable_hook_fails_after_all_attempts():
    waits = []
    ok, attempts, error = post_json(
        f"http://127.0.0.1:{free_port()}/x", PAYLOAD, attempts=3, backoff=0.1, timeout=2, sleep=waits.append
    )
    assert (ok, attempts) == (False, 3) and "refused" in error.lower()
    assert waits == [0.1, 0.2]


def test_webhook_setting_is_checked():
    assert webhook_urls(" http://a/x , https://b/y ,") == ["http://a/x", "https://b/y"]
    assert webhook_urls("") == []
    with pytest.raises(ConfigError, match="not an http"):
        webhook_urls("ftp://a/x")
