"""Snippets with the query's words marked, computed here for every search mode.

kNN hits match by meaning and carry no highlight from Elasticsearch; doing the same work for
BM25 hits too keeps one snippet shape for all three modes and one round trip per search.
Words match on a crude English stem (the index's `english` analyser stems too), so "indexing"
marks "indexed". The output is HTML-escaped text with <mark> around matches.
"""

from __future__ import annotations

import html
import re

_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset(
    """a an and are as at be but by for from has have he her his i in is it its of on or
our she that the their them there they this to was we were what when which who will with you your""".split()
)
_SUFFIXES = (
    "ational",
    "ization",
    "ations",
    "ation",
    "ness",
    "ments",
    "ment",
    "ings",
    "ing",
    "edly",
    "ies",
    "ied",
    "ers",
    "er",
    "ed",
    "ly",
    "es",
    "s",
)


def stem(word: str) -> str:
    word = word.lower()
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def query_stems(query: str) -> set[str]:
    words = [w for w in _WORD.findall(query.lower()) if w not in _STOP]
    return {stem(w) for w in words}


def highlight(text: str, query: str, width: int = 240, fragments: int = 2) -> tuple[str, list[str]]:
    """(plain snippet, up to `fragments` HTML fragments with matches marked).

    A fragment is a window of about `width` characters around the densest run of matches;
    without any match the snippet is the text's start and there are no fragments.
    """
    flat = " ".join(text.split())
    stems = query_stems(query)
    spans = [(m.start(), m.end()) for m in _WORD.finditer(flat) if stems and stem(m.group()) in stems]
    if not spans:
        return _clip(flat, 0, width), []
    windows: list[tuple[int, int]] = []
    remaining = spans
    while remaining and len(windows) < fragments:
        start, end = _densest(remaining, width)
        windows.append((start, end))
        remaining = [s for s in remaining if s[1] <= start or s[0] >= end]
    windows.sort()
    out = [_mark(flat, start, end, spans) for start, end in windows]
    return _clip(flat, *windows[0]), out


def _densest(spans: list[tuple[int, int]], width: int) -> tuple[int, int]:
    best, best_count, j = 0, 0, 0
    for i, (start, _) in enumerate(spans):
        while j < len(spans) and spans[j][1] <= start + width:
            j += 1
        if j - i > best_count:
            best, best_count = i, j - i
    first = spans[best][0]
    lead = min(first, width // 4)  # a little context before the first match
    return first - lead, first - lead + width


def _snap(text: str, start: int, end: int) -> tuple[int, int]:
    start, end = max(0, start), min(len(text), end)
    if start > 0:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < start + 20 else start
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > end - 20 else end
    return start, end


def _clip(text: str, start: int, end: int) -> str:
    start, end = _snap(text, start, end)
    return ("…" if start > 0 else "") + text[start:end] + ("…" if end < len(text) else "")


def _mark(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> str:
    start, end = _snap(text, start, end)
    parts, pos = [], start
    for s, e in spans:
        if s < start or e > end:
            continue
        parts.append(html.escape(text[pos:s]))
        parts.append(f"<mark>{html.escape(text[s:e])}</mark>")
        pos = e
    parts.append(html.escape(text[pos:end]))
    return ("…" if start > 0 else "") + "".join(parts) + ("…" if end < len(text) else "")
