"""A process that configures the Celery app for another broker key prefix sends there, not to the first one
(the shells and tests build settings more than once: the producer pool must follow)."""

from __future__ import annotations

import os
import uuid

import pytest

from pipeline.config import Settings


@pytest.fixture
def broker_url():
    import redis

    url = os.environ.get("DOCPIPE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Redis answers at {url}")
    return url


def test_messages_follow_the_key_prefix_of_the_latest_configuration(broker_url):
    import redis

    from workers.app import configure

    first, second = f"switch-a-{uuid.uuid4().hex[:8]}:", f"switch-b-{uuid.uuid4().hex[:8]}:"
    r = redis.Redis.from_url(broker_url)
    try:
        for prefix in (first, second, first):
            configure(Settings(redis_url=broker_url, broker_key_prefix=prefix)).send_task("t.x", queue="q")
        assert (r.llen(f"{first}q"), r.llen(f"{second}q")) == (2, 1)
    finally:
        r.delete(f"{first}q", f"{second}q")
        configure()  # the process's own settings again
