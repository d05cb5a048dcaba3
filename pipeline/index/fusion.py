"""Fusing the lexical (BM25) and the semantic (kNN) ranking of a hybrid search into one list.

Equal-weight reciprocal rank fusion lets the weaker list drag the stronger one down: on a news known-item
set BM25 alone beat it. Two knobs fix that, tuned per tenant on its own judged queries:

- **weighted RRF**: score = w·2/(c + rank_lexical) + (1 − w)·2/(c + rank_semantic). At w = 0.5 this is plain
  RRF (the factor 2 keeps its scores); at w = 1 or 0 the order is that of one list alone.
- **normalised scores**: each list's scores min-max scaled to [0, 1] within the fetched window, then
  w·lexical + (1 − w)·semantic. It keeps how far ahead a hit is, which ranks throw away: a title match
  far above the rest stays far above.

A hit missing from a list adds nothing for that list. Ties keep the order in which the hits were first met
walking the lists depth by depth, so a tie goes to the hit seen at a better rank, then to the lexical list.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

from pipeline.index.hits import Hit

METHODS = ("rrf", "score")
_FLOOR = 1e-6  # a list's lowest hit after min-max scaling


@dataclass(frozen=True)
class Fusion:
    method: str = "rrf"  # rrf | score
    lexical_weight: float = 0.5  # the semantic list gets 1 - this
    rank_constant: int = 60  # RRF only: larger flattens the difference between ranks

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown fusion {self.method!r}: use one of {', '.join(METHODS)}")
        if not 0.0 <= self.lexical_weight <= 1.0:
            raise ValueError(f"the lexical weight must be between 0 and 1, got {self.lexical_weight}")
        if self.rank_constant < 1:
            raise ValueError("rank_constant must be at least 1")

    @property
    def is_plain_rrf(self) -> bool:
        """What Elasticsearch's own `rrf` retriever computes (equal weights)."""
        return self.method == "rrf" and self.lexical_weight == 0.5

    def label(self) -> str:
        if self.method == "rrf":
            return f"rrf w={self.lexical_weight:.2f} c={self.rank_constant}"
        return f"score w={self.lexical_weight:.2f}"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> Fusion:
        data = data or {}
        return cls(
            method=str(data.get("method", "rrf")),
            lexical_weight=float(data.get("lexical_weight", 0.5)),
            rank_constant=int(data.get("rank_constant", 60)),
        )


DEFAULT_FUSION = Fusion()


def fuse(lexical: list[Hit], semantic: list[Hit], k: int, fusion: Fusion = DEFAULT_FUSION) -> list[Hit]:
    w = fusion.lexical_weight
    if fusion.method == "rrf":
        return rrf_fuse([lexical, semantic], k, fusion.rank_constant, weights=(2 * w, 2 * (1 - w)))
    return score_fuse([lexical, semantic], k, weights=(w, 1 - w))


def rrf_fuse(
    lists: list[list[Hit]], k: int, rank_constant: int = 60, weights: Sequence[float] | None = None
) -> list[Hit]:
    """Reciprocal rank fusion: score = sum over lists of weight / (rank_constant + rank), ranks 1-based."""
    if rank_constant < 1:
        raise ValueError("rank_constant must be at least 1")
    return _combine(lists, k, weights, lambda hits, depth: 1.0 / (rank_constant + depth + 1))


def score_fuse(lists: list[list[Hit]], k: int, weights: Sequence[float] | None = None) -> list[Hit]:
    """Min-max normalised scores, weighted and summed. A list whose scores are all equal scales to 1."""

    def scaled(hits: list[Hit]) -> list[float]:
        # into (0, 1]: a list's last hit still counts for more than no hit, so a weight of 0 or 1 keeps
        # the other list's whole order
        scores = [h.score for h in hits]
        low, high = min(scores, default=0.0), max(scores, default=0.0)
        return [1.0 if high == low else _FLOOR + (1 - _FLOOR) * (s - low) / (high - low) for s in scores]

    norms: dict[int, list[float]] = {}

    def part(hits: list[Hit], depth: int) -> float:
        key = id(hits)
        if key not in norms:
            norms[key] = scaled(hits)
        return norms[key][depth]

    return _combine(lists, k, weights, part)


def _combine(lists: list[list[Hit]], k: int, weights: Sequence[float] | None, part) -> list[Hit]:
    if k <= 0:
        return []
    weights = [1.0] * len(lists) if weights is None else list(weights)
    if len(weights) != len(lists):
        raise ValueError(f"{len(weights)} weights for {len(lists)} lists")
    first_seen: dict[str, Hit] = {}
    parts: dict[str, list[float]] = {}
    counted: set[tuple[int, str]] = set()
    for depth in range(max((len(hits) for hits in lists), default=0)):
        for which, hits in enumerate(lists):
            if depth >= len(hits):
                continue
            key = hits[depth].chunk_id
            if (which, key) in counted:  # a list repeating a hit must not vote twice
                continue
            counted.add((which, key))
            first_seen.setdefault(key, hits[depth])
            parts.setdefault(key, []).append(weights[which] * part(hits, depth))
    # fsum makes the total independent of summation order, so exact ties stay ties.
    totals = {key: math.fsum(values) for key, values in parts.items()}
    order = sorted(first_seen, key=lambda key: -totals[key])
    return [replace(first_seen[key], score=totals[key], rank=rank) for rank, key in enumerate(order[:k], start=1)]
