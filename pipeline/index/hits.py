"""A search hit: one chunk, where it ranked and with what score."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Hit:
    chunk_id: str
    doc_id: str
    source: str
    ordinal: int
    score: float
    text: str
    title: str | None
    rank: int  # 1-based position in the list it was returned in
    pages: list[int] = field(default_factory=list)  # the PDF pages the chunk lies on; [] for other formats
    language: str | None = None  # ISO 639-1 code of the chunk's document, None when unknown
