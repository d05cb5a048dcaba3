"""What the API needs per process: settings, SQL sessions, and lazily made clients."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import Settings
from pipeline.errors import ServiceUnavailable
from pipeline.services import elasticsearch_client, endpoints
from pipeline.store.db import session_scope
from workers import client

if TYPE_CHECKING:
    from pipeline.reindex import SearchTarget


class ApiContext:
    def __init__(
        self,
        settings: Settings,
        enqueue: Callable[[str], None] | None = None,
        send_task: Callable[[str, list], None] | None = None,
    ):
        self.settings = settings
        self.endpoints = endpoints(settings)
        self.enqueue = enqueue or (lambda job_id: client.send(client.START_JOB, job_id, settings=settings))
        self.send_task = send_task or (lambda name, args: client.send(name, *args, settings=settings))
        self._encoder_lock = threading.Lock()
        self._encoders: dict[tuple[str, str], object] = {}

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

    def encoder(self, model_path: str, variant: str):
        """The query encoder of `model_path` run as `variant` (the live version's: `search_target`), loaded on first
        use and kept."""
        key = (model_path, variant)
        with self._encoder_lock:
            if key not in self._encoders:
                from pipeline.embed import get_encoder
                from pipeline.encoders import split
                from pipeline.query_cache import CachedEncoder

                s = self.settings
                # repeated queries skip the model (DOCPIPE_API_QUERY_CACHE_SIZE vectors per encoder)
                self._encoders[key] = CachedEncoder(
                    get_encoder(model_path, s.device, s.embed_batch_size, *split(variant)), s.api.query_cache_size
                )
            return self._encoders[key]

    def search_target(self) -> SearchTarget:
        """(index, model path, encoder variant) of the live version; a reindex may have moved to another model or
        encoder. Rows that record none fall back to this process's settings."""
        from pipeline.encoders import variant
        from pipeline.reindex import search_target

        s = self.settings
        with self.session() as session:
            return search_target(
                session, s.index_prefix, s.encoder_path, variant(s.encoder.backend, s.encoder.quantize)
            )
