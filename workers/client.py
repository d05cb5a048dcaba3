"""The one door into Celery for the shells (CLI, API, launcher): send a task by name, read a queue's depth.

Nothing here imports a task module: a message is routed by its name (workers.routing), so sending
costs no model or pipeline import in the sending process.
"""

from __future__ import annotations

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
    app = configure(settings or get_settings())
    # one retry, at once, on sockets that give up: a scrape or a sweep must learn "down", not wait for it
    conn = app.connection_for_read(transport_options=_BOUNDED)
    try:
        with conn:
            return int(conn.default_channel._size(queue))
    except (OperationalError, OSError, *conn.connection_errors, *conn.channel_errors) as exc:
        raise ServiceUnavailable(f"the broker cannot be reached: {exc}") from exc
