"""The one door into Celery for the shells (CLI, API, launcher): send a task by name, read a queue's depth.

Nothing here imports a task module: a message is routed by its name (workers.routing), so sending
costs no model or pipeline import in the sending process.
"""

from __future__ import annotations

from pipeline.config import Settings, get_settings
from workers.app import configure
from workers.routing import CLASSIFY, GPU_QUEUE, INGEST_QUEUE, QUEUES, REINDEX, RUN_SOURCE, START_JOB, TRAIN  # noqa: F401


def send(name: str, *args, settings: Settings | None = None) -> None:
    """Send task `name` with positional `args` to the queue its name routes to."""
    configure(settings or get_settings()).send_task(name, args=list(args))


def queue_depth(queue: str, settings: Settings | None = None) -> int:
    """Messages waiting in a queue (not those a worker holds unacknowledged).

    `_size` is what kombu's virtual transports (Redis among them) implement for a queue's length, summed
    over its priority lists and under the global key prefix; a passive declare would miss the prefix.
    """
    app = configure(settings or get_settings())
    with app.connection_for_read() as conn:
        return int(conn.default_channel._size(queue))
