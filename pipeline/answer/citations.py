"""Citations: the [n] markers of an answer, resolved to the passages they number."""

from __future__ import annotations

import re

from pipeline.answer.passages import Passage

# [1], [2, 3], [1-3], [1; 4]: what models write when told to cite by number
_MARKER = re.compile(r"\[\s*(\d{1,3}(?:\s*(?:[,;]|[-–])\s*\d{1,3})*)\s*\]")
_PART = re.compile(r"(\d{1,3})\s*[-–]\s*(\d{1,3})|(\d{1,3})")
MAX_RANGE = 20  # "[1-999]" is noise, not twenty citations


def cited_numbers(text: str) -> list[int]:
    """The passage numbers an answer cites, in order of first mention."""
    seen: dict[int, None] = {}
    for marker in _MARKER.finditer(text):
        for part in _PART.finditer(marker.group(1)):
            if part.group(3):
                seen.setdefault(int(part.group(3)), None)
                continue
            lo, hi = int(part.group(1)), int(part.group(2))
            if lo <= hi <= lo + MAX_RANGE:
                for n in range(lo, hi + 1):
                    seen.setdefault(n, None)
    return list(seen)


def cited(text: str, passages: list[Passage]) -> list[Passage]:
    """The passages the answer cites, in order of first mention; numbers no passage has are ignored."""
    by_number = {p.number: p for p in passages}
    return [by_number[n] for n in cited_numbers(text) if n in by_number]


def strip_markers(text: str) -> str:
    return " ".join(_MARKER.sub(" ", text).split())
