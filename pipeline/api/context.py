"""What the API needs per process: settings, SQL sessions, and lazily made clients."""
from __future__ import annotations

import importlib.util
import threading
from functools import cached_property
from pathlib import Path
from typing import Callable

from pipeline.config import Settings
from pipeline.errors import ServiceUnavailable
from pipeline.services import elasticsearch_client, endpoints
from pipeline.store.db import session_scope


def celery_enqueue(settings: Settings) -> Callable[[str], None]:
    """Send a job's first task the way `docpipe ingest` does (imported late: pipeline/ knows no Celery)."""
    def enqueue(job_id: str) -> None:
        from workers.app import configure
        from workers.tasks import start_job

        configure(settings)
        start_job.delay(job_id)

    return enqueue


def celery_send(settings: Settings) -> Callable[[str, list], None]:
    """Send any task by name (feeds' runs): no worker module needs importing here."""
    def send(name: str, args: list) -> None:
        from workers.app import configure

        configure(settings).send_task(name, args=args)

    return send


class ApiContext:
    def __init__(self, settings: Settings, enqueue: Callable[[str], None] | None = None,
                 send_task: Callable[[str, list], None] | None = None):
        self.settings = settings
        self.endpoints = endpoints(settings)
        self.enqueue = enqueue or celery_enqueue(settings)
        self.send_task = send_task or celery_send(settings)
        self._encoder_lock = threading.Lock()
        self._encoders: dict[str, object] = {}

    @property
    def sql_url(self) -> str:
        return self.endpoints.sql_url

    def session(self):
        return session_scope(self.sql_url)

    @property
    def uploads_dir(self) -> Path:
        return (self.settings.data_dir / "uploads").resolve()

    @property
    def uploads_prefix(self) -> str:
        return f"{self.uploads_dir}/"

    @property
    def read_alias(self) -> str:
        return f"{self.settings.index_prefix}-read"

    @cached_property
    def es(self):
        if not self.endpoints.elasticsearch_url:
            raise ServiceUnavailable("no Elasticsearch configured: run `docpipe up` or set DOCPIPE_ELASTICSEARCH_URL")
        return elasticsearch_client(self.settings, self.endpoints.elasticsearch_url)

    @cached_property
    def redis(self):
        import redis

        url = self.endpoints.redis_url or "redis://127.0.0.1:6379/0"
        return redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)

    def encoder(self, model_path: str | None = None):
        """The query encoder for `model_path` (default: the configured one), loaded on first use and kept."""
        path = model_path or self.settings.encoder_path
        with self._encoder_lock:
            if path not in self._encoders:
                from pipeline.embed import get_encoder

                s = self.settings
                self._encoders[path] = get_encoder(path, s.device, s.embed_batch_size)
            return self._encoders[path]

    def search_target(self) -> tuple[str, str | None]:
        """(index, model path) of the live version; a reindex may have moved to another model."""
        if importlib.util.find_spec("pipeline.reindex") is None:
            return self.read_alias, None
        from pipeline.reindex import search_target

        with self.session() as session:
            return search_target(session, self.settings.index_prefix, self.settings.encoder_path)
