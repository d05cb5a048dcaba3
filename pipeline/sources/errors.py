"""Why a source run failed. Each is recorded with the source, which then backs off; none is
retried by Celery, because the schedule itself is the retry."""

from __future__ import annotations

from pipeline.errors import PermanentError


class SourceError(PermanentError):
    """The source cannot be read this time (missing folder, bad settings...)."""


class FetchError(SourceError):
    """The feed could not be downloaded: DNS, connection, timeout, HTTP status, size cap."""


class FetchRefused(FetchError):
    """Policy said no: a scheme other than http(s), or an address in a refused range."""


class FeedError(SourceError):
    """The body is not a feed we can read: malformed XML or JSON, unknown format, unsafe XML."""


class InvalidSource(SourceError):
    """A source cannot be added as given: bad URL, bad interval, missing folder."""
