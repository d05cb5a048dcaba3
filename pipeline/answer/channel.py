"""How a gpu worker's answer travels back to the CLI or API process that waits for it: a Redis list per request.

The worker pushes JSON events (started, delta, done, error) to the list; the waiter pops them in order. A list
rather than pub/sub: events pushed before the waiter listens are kept, not lost, and a waiter that dies leaves
a list that expires. The broker's Redis carries it (under the broker's key prefix), so no new service is needed.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

from pipeline.errors import RetryableError

KEY_PREFIX = "docpipe:answer:"
TTL_SECONDS = 900
POLL_SECONDS = 1.0  # each blocking pop; below the clients' socket timeouts


class AnswerTimeout(RetryableError):
    """No event came back from the gpu worker in time."""


def new_key(broker_prefix: str = "") -> str:
    return f"{broker_prefix}{KEY_PREFIX}{uuid.uuid4().hex}"


class Channel:
    def __init__(self, redis, key: str, ttl: int = TTL_SECONDS):
        self.redis, self.key, self.ttl = redis, key, ttl

    def claim(self) -> bool:
        """True for the first run of a request only: a redelivered task must not answer twice into one list."""
        return bool(self.redis.set(f"{self.key}:claimed", "1", nx=True, ex=self.ttl))

    def publish(self, kind: str, **fields) -> None:
        pipe = self.redis.pipeline()
        pipe.lpush(self.key, json.dumps({"kind": kind, **fields}))
        pipe.expire(self.key, self.ttl)
        pipe.execute()

    def events(self, start_timeout: float, timeout: float) -> Iterator[dict]:
        """Events in order until `done` or `error` (both yielded); AnswerTimeout when the worker has not started
        within start_timeout seconds, or has sent nothing for timeout seconds since."""
        started = False
        deadline = time.monotonic() + start_timeout
        try:
            while True:
                popped = self.redis.brpop([self.key], timeout=POLL_SECONDS)
                if popped is None:
                    if time.monotonic() > deadline:
                        raise AnswerTimeout(
                            f"no event from the gpu worker for {timeout if started else start_timeout:.0f} s"
                            if started
                            else f"no gpu worker took the question within {start_timeout:.0f} s: is one running "
                            "(`docpipe up`, or a worker on the gpu queue)?"
                        )
                    continue
                event = json.loads(popped[1])
                started = True
                deadline = time.monotonic() + timeout
                yield event
                if event["kind"] in ("done", "error"):
                    return
        finally:
            self.redis.delete(self.key)
