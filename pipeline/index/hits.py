"""A search hit: one chunk, where it ranked and with what score."""

from __future__ import annotations

from dataclasses import dataclass


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
