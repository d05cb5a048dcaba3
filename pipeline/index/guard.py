"""Maps Elasticsearch client exceptions onto pipeline.errors (retryable vs permanent)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from elasticsearch import ApiError, SerializationError, TransportError

from pipeline.errors import ConfigError, ServiceUnavailable

# Statuses that mean "busy or briefly away": the same request may succeed later.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
AUTH_STATUSES = frozenset({401, 403})


@contextmanager
def guard(what: str) -> Iterator[None]:
    """Re-raise outages as ServiceUnavailable and credential problems as ConfigError.

    Other API errors (a 400 for a malformed query, a 404 for a missing index) propagate
    unchanged: they are bugs or states the caller must decide about.
    """
    try:
        yield
    except ApiError as exc:
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
