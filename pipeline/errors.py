"""A small picklable error hierarchy: retryable vs permanent, each with a reason code.

Errors cross Celery's result backend, so every one pickles with its arguments intact.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Reason codes recorded on dead letters; stable strings, safe to filter on."""

    EMPTY = "empty"
    BINARY = "binary"
    DECODE_ERROR = "decode_error"
    CORRUPT_PDF = "corrupt_pdf"
    TOO_LARGE = "too_large"
    MISSING_TEXT_FIELD = "missing_text_field"
    INVALID_JSON = "invalid_json"
    INVALID_CSV = "invalid_csv"
    UNSUPPORTED_TYPE = "unsupported_type"
    NOT_FOUND = "not_found"
    INDEX_REJECTED = "index_rejected"
    EMBED_FAILED = "embed_failed"


class DocpipeError(Exception):
    retryable = False

    def __init__(self, message: str, *args):
        super().__init__(message, *args)
        self.message = message

    def __str__(self) -> str:
        return self.message


class PermanentError(DocpipeError):
    """Retrying will not help: bad input, bad configuration."""


class RetryableError(DocpipeError):
    """A dependency is busy or away; the same call may succeed later."""

    retryable = True


class InputError(PermanentError):
    """One input item cannot be processed; it becomes a dead letter with this reason."""

    def __init__(self, reason: Reason | str, message: str):
        super().__init__(message, str(reason))
        self.reason = Reason(reason)


class ConfigError(PermanentError):
    """Settings or a model folder are unusable."""


class ServiceUnavailable(RetryableError):
    """Elasticsearch, the broker or the database cannot be reached."""


class BulkIndexError(RetryableError):
    """Some bulk items failed for retryable reasons even after backoff."""

    def __init__(self, message: str, failures: list[dict] | None = None):
        super().__init__(message, failures or [])
        self.failures = failures or []
