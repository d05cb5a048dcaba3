"""Scheduled sources: feeds fetched over HTTP(S) and folders re-synced, on a beat-driven schedule."""

from pipeline.sources.errors import FeedError, FetchError, FetchRefused, InvalidSource, SourceError
from pipeline.sources.schedule import backoff_delay, format_every, parse_every

__all__ = [
    "FeedError",
    "FetchError",
    "FetchRefused",
    "InvalidSource",
    "SourceError",
    "backoff_delay",
    "format_every",
    "parse_every",
]
