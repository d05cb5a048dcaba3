"""Where the services are: configured URLs, else the embedded stack recorded by `docpipe up`."""

from __future__ import annotations

import json
from dataclasses import dataclass

from pipeline.config import Settings


@dataclass(frozen=True)
class Endpoints:
    sql_url: str
    redis_url: str | None
    elasticsearch_url: str | None


def read_stack(settings: Settings) -> dict:
    try:
        return json.loads(settings.stack_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def endpoints(settings: Settings) -> Endpoints:
    stack = read_stack(settings)
    return Endpoints(
        sql_url=settings.sql_url,
        redis_url=settings.redis_url or stack.get("redis_url"),
        elasticsearch_url=settings.elasticsearch_url or stack.get("elasticsearch_url"),
    )


def elasticsearch_client(settings: Settings, url: str | None = None):
    from elasticsearch import Elasticsearch

    url = url or endpoints(settings).elasticsearch_url
    if not url:
        raise RuntimeError("No Elasticsearch configured: run `docpipe up` or set DOCPIPE_ELASTICSEARCH_URL")
    # Retries on timeouts cover short stalls; the bulk helper handles 429s itself.
    return Elasticsearch(
        url, api_key=settings.elasticsearch_api_key, request_timeout=60, retry_on_timeout=True, max_retries=3
    )
