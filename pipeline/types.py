"""Plain data that flows between pipeline steps."""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

# Fixed namespace: document ids must stay stable across machines and releases.
DOC_NAMESPACE = uuid.UUID("6f1d2c3e-8a47-4b5e-9d61-2f0c7e9ab001")


_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """Text every store takes: no NUL (PostgreSQL refuses it in text and JSON) and no lone surrogate (no UTF-8
    encodes one; a JSON "\\ud800" escape makes one), which becomes U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


# A source or path longer than this (UTF-8 bytes) does not fit the SQL columns (2048 characters) and, with its
# tenant, PostgreSQL's unique index (2704 bytes a row).
MAX_SOURCE_BYTES = 2000


def bounded_source(source: str) -> str:
    """The source as SQL holds it: one over MAX_SOURCE_BYTES keeps its head and ends in "…" and a hash of the
    whole, so that the same long url or id is the same document every time."""
    raw = source.encode("utf-8")
    if len(raw) <= MAX_SOURCE_BYTES:
        return source
    head = raw[: MAX_SOURCE_BYTES - 24].decode("utf-8", "ignore")
    return f"{head}…{hashlib.sha256(raw).hexdigest()[:16]}"


def utcnow() -> datetime:
    """The one clock: timezone-aware UTC, as every timestamp docpipe stores or sends."""
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive one is taken as UTC (SQLite hands stored times back without their zone)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def document_id(tenant: str, source: str) -> str:
    """Stable id for (tenant, source URI or upload name)."""
    return uuid.uuid5(DOC_NAMESPACE, f"{tenant}\x00{source}").hex


def chunk_id(tenant: str, doc_id: str, ordinal: int) -> str:
    """Elasticsearch _id of a chunk; doc_id already encodes the tenant."""
    del tenant  # part of the contract's signature; doc_id is derived from it
    return f"{doc_id}-{ordinal:05d}"


@dataclass
class RawDocument:
    """One record read from an input file, before cleaning."""

    source: str  # file path, URL or record id: the document's identity within a tenant
    body: str  # decoded text; markup when is_markup
    # txt | md | html | pdf | json | jsonl | csv | docx | pptx | xlsx | ods | odt | odp | epub | eml | rtf (Office's
    # macro-enabled and template forms take their family's type)
    content_type: str
    is_markup: bool = False
    title: str | None = None
    published: datetime | None = None
    metadata: dict = field(default_factory=dict)
    origin: str | None = None  # a record's place in its file (`<file>#<n>`), to name it apart from its id


@dataclass
class CleanDocument:
    source: str
    text: str
    content_type: str
    title: str | None = None
    published: datetime | None = None
    metadata: dict = field(default_factory=dict)
    # PDFs: the offset in `text` where each page starts (page 1 at 0); None for formats without pages
    page_starts: list[int] | None = None
    language: str | None = None  # ISO 639-1, when known before detection (the tenant fixed it)
    origin: str | None = None  # as RawDocument.origin


@dataclass
class Rejected:
    """An item that cannot be processed: becomes a dead letter; the batch goes on."""

    source: str
    stage: str  # read | clean | dedup | chunk | embed | index
    reason: str  # a pipeline.errors.Reason value
    detail: str


@dataclass(frozen=True)
class ChunkSpan:
    ordinal: int
    start: int  # character offsets into the cleaned text
    end: int
    token_count: int


@dataclass
class DedupVerdict:
    """Outcome of deduplicating one document against its tenant's corpus."""

    content_hash: str
    signature: list[int]
    duplicate_of: str | None = None  # document id of the canonical copy
    kind: str | None = None  # None | "exact" | "near"
    similarity: float = 1.0
    cluster_id: str | None = None
