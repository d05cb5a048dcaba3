"""The one door into Celery for the shells (CLI, API, launcher): send a task by name, read a queue's depth.

Nothing here imports a task module: a message is routed by its name (workers.routing), so sending
costs no model or pipeline import in the sending process.
"""

from __future__ import annotations

import base64
import json

from kombu.exceptions import OperationalError

from pipeline.config import Settings, get_settings
from pipeline.errors import ServiceUnavailable
from workers.app import configure
from workers.routing import (  # noqa: F401
    CLASSIFY,
    DELETE_DOCUMENTS,
    DELIVER_WEBHOOK,
    EXTRACT,
    GENERATE_ANSWER,
    GPU_QUEUE,
    INGEST_QUEUE,
    QUEUES,
    REINDEX,
    RUN_SOURCE,
    START_JOB,
    TRAIN,
    VERIFY_INDEX,
)

BROKER_TIMEOUT_SECONDS = 2.0
_BOUNDED = {
    "max_retries": 1,
    "interval_start": 0,
    "socket_connect_timeout": BROKER_TIMEOUT_SECONDS,
    "socket_timeout": BROKER_TIMEOUT_SECONDS,
}


def send(name: str, *args, settings: Settings | None = None) -> None:
    """Send task `name` with positional `args` to the queue its name routes to."""
    configure(settings or get_settings()).send_task(name, args=list(args))


def queue_depth(queue: str, settings: Settings | None = None) -> int:
    """Messages waiting in a queue (not those a worker holds unacknowledged).

    `_size` is what kombu's virtual transports (Redis among them) implement for a queue's length, summed
    over its priority lists and under the global key prefix; a passive declare would miss the prefix.
    Raises ServiceUnavailable within a few seconds when the broker cannot be reached.
    """
    return _on_channel(settings, lambda channel: int(channel._size(queue)))


# The revive sweep reads at most this many waiting messages of a queue; past it, every job counts as waiting.
WAITING_SCAN_LIMIT = 10_000


def waiting_jobs(
    queue: str, settings: Settings | None = None, limit: int = WAITING_SCAN_LIMIT
) -> frozenset[str] | None:
    """The job ids that the messages waiting in `queue` carry as their first argument (start_job, read_files,
    index_files, reindex...), read without taking any message off; None when more than `limit` wait or one
    cannot be read, i.e. when any job's work may be waiting.

    The revive sweep asks this instead of "is the queue empty": beat's own sweeps, sent at the same second as the
    revive, and other jobs' work kept a queue from ever being empty, so a lost read was never sent again.
    Each priority list of the queue is read as kombu's `_size` counts them (under the global key prefix).
    """

    def scan(channel) -> frozenset[str] | None:
        jobs: set[str] = set()
        seen = 0
        with channel.conn_or_acquire() as client:
            # kombu's prefixing client prefixes the commands the transport itself sends, LLEN among them but not
            # LRANGE: the key is prefixed here (DOCPIPE_BROKER_KEY_PREFIX)
            prefix = getattr(client, "global_keyprefix", "") or ""
            for pri in channel.priority_steps:
                key = prefix + channel._q_for_pri(queue, pri)
                raw = client.lrange(key, 0, limit - seen)  # one more than is left
                seen += len(raw)
                if seen > limit:
                    return None
                for item in raw:
                    job_id = _first_argument(item)
                    if job_id is _UNREADABLE:
                        return None
                    if isinstance(job_id, str):
                        jobs.add(job_id)
        return frozenset(jobs)

    return _on_channel(settings, scan)


_UNREADABLE = object()


def _first_argument(item: bytes | str) -> object:
    """The first positional argument of a Celery message as kombu's Redis transport stores it (JSON, the body
    base64-encoded JSON `[args, kwargs, embed]`), or _UNREADABLE."""
    try:
        message = json.loads(item)
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return args[0] if args else None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return _UNREADABLE


def _on_channel(settings: Settings | None, use):
    app = configure(settings or get_settings())
    # one retry, at once, on sockets that give up: a scrape or a sweep must learn "down", not wait for it
    conn = app.connection_for_read(transport_options=_BOUNDED)
    try:
        with conn:
            return use(conn.default_channel)
    except (OperationalError, OSError, *conn.connection_errors, *conn.channel_errors) as exc:
        raise ServiceUnavailable(f"the broker cannot be reached: {exc}") from exc
