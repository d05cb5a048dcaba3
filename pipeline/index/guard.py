"""Maps Elasticsearch client exceptions onto pipeline.errors (retryable vs permanent)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from elasticsearch import ApiError, SerializationError, TransportError

from pipeline.errors import ConfigError, ServiceUnavailable

# Statuses that mean "busy or briefly away": the same request may succeed later.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
AUTH_STATUSES = frozenset({401, 403})
# A write block (403, or 429 from 7.x on): the disk passed the flood-stage watermark, or an operator set
# index.blocks.*; it lifts without any change on docpipe's side, so it is waited out like an outage.
BLOCKED = "cluster_block_exception"


def blocked_message(what: str, reason: str) -> str:
    return (
        f"{what}: Elasticsearch blocks writes ({reason}): free disk space below the flood-stage watermark or lift "
        "the index block (index.blocks.*); docpipe retries for DOCPIPE_WORKER_OUTAGE_SECONDS"
    )


@contextmanager
def guard(what: str) -> Iterator[None]:
    """Re-raise outages as ServiceUnavailable and credential problems as ConfigError.

    Other API errors (a 400 for a malformed query, a 404 for a missing index) propagate
    unchanged: they are bugs or states the caller must decide about.
    """
    try:
        yield
    except ApiError as exc:
        reason = _block_reason(exc.body)
        if reason is not None:
            raise ServiceUnavailable(blocked_message(what, reason)) from exc
        if exc.status_code in RETRYABLE_STATUSES:
            raise ServiceUnavailable(f"{what}: Elasticsearch answered {exc.status_code} ({exc.message})") from exc
        if exc.status_code in AUTH_STATUSES:
            raise ConfigError(f"{what}: Elasticsearch refused the credentials ({exc.status_code})") from exc
        raise
    except SerializationError:
        # Our own payload could not be encoded or a reply decoded: not an outage.
        raise
    except TransportError as exc:
        raise ServiceUnavailable(f"{what}: Elasticsearch unreachable ({type(exc).__name__}: {exc})") from exc


def _block_reason(body: object) -> str | None:
    """The reason of a write block in an error reply: its own error, or a by-query request's item failures."""
    if not isinstance(body, dict):
        return None
    failures = body.get("failures")
    failures = failures if isinstance(failures, list) else []
    causes = [body.get("error"), *(f.get("cause") for f in failures if isinstance(f, dict))]
    for cause in causes:
        if isinstance(cause, dict) and cause.get("type") == BLOCKED:
            return str(cause.get("reason") or BLOCKED)
    return None
