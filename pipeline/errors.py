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
    CORRUPT_FILE = "corrupt_file"  # an Office, OpenDocument, EPUB, e-mail or RTF file its reader cannot parse
    ENCRYPTED = "encrypted"  # a password-protected PDF, Office file or zip, or a DRM e-book: decrypt it and replay
    NEEDS_OCR = "needs_ocr"  # a PDF of scanned pages only, or an image, and no Tesseract to read it
    TOO_LARGE = "too_large"
    MISSING_TEXT_FIELD = "missing_text_field"
    INVALID_JSON = "invalid_json"
    INVALID_CSV = "invalid_csv"
    TOO_DEEP = "too_deep"  # JSON past the parser's recursion limit; e-mails attached more than 3 levels deep
    NUMBER_TOO_LONG = "number_too_long"  # an integer of more digits than Python converts (4,300)
    READER_ERROR = "reader_error"  # a reader or parser failed in an unforeseen way; the detail names the exception
    UNSUPPORTED_TYPE = "unsupported_type"
    NOT_FOUND = "not_found"
    INDEX_REJECTED = "index_rejected"
    EMBED_FAILED = "embed_failed"
    WORKER_LOST = "worker_lost"  # its worker died each of the max deliveries it was taken (poison control)
    TIMEOUT = "timeout"  # reading it outlasted the task's soft time limit
    INVALID_METADATA = "invalid_metadata"  # metadata over a limit or of a shape not indexed (docs/metadata.md)
    INVALID_NAME = "invalid_name"  # a file name that is not UTF-8 (another encoding's bytes): SQL cannot hold it
    DUPLICATE_ID = "duplicate_id"  # another text under a url or id that a record of the same job already has


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


class InvalidSchedule(PermanentError):
    """A cron expression or time zone that cannot be used (pipeline/schedule.py)."""


class InvalidWebhook(PermanentError):
    """A webhook endpoint that cannot be registered as given: bad URL, unknown event type."""


class ServiceUnavailable(RetryableError):
    """Elasticsearch, the broker or the database cannot be reached."""


class BulkIndexError(RetryableError):
    """Some bulk items failed for retryable reasons even after backoff."""

    def __init__(self, message: str, failures: list[dict] | None = None):
        super().__init__(message, failures or [])
        self.failures = failures or []


def as_input_error(exc: BaseException) -> InputError:
    """The dead letter an exception raised while reading one file or record becomes.

    Readers turn what they foresee into an InputError themselves; this names the rest (parsers' recursion
    and conversion limits, memory, library bugs) so that one bad input never fails a whole job.
    """
    if isinstance(exc, InputError):
        return exc
    detail = _describe(exc)
    if isinstance(exc, RecursionError):
        return InputError(Reason.TOO_DEEP, f"nested too deeply to parse ({detail})")
    if isinstance(exc, MemoryError):
        return InputError(Reason.TOO_LARGE, f"ran out of memory while reading it ({detail})")
    if isinstance(exc, ValueError) and "integer string conversion" in str(exc):
        return InputError(Reason.NUMBER_TOO_LONG, f"a number has too many digits ({detail})")
    return InputError(Reason.READER_ERROR, detail)


def _describe(exc: BaseException, limit: int = 500) -> str:
    # Parser messages may quote the input: a dead letter's detail stays short.
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 1] + "…"
