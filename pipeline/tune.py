"""Retrieval evaluation per mode, and the hybrid fusion tuned on a tenant's own judged queries.

Each query is searched once per list (BM25 and kNN, `window` chunks each); every mode and every fusion
candidate is then scored from those two lists, with no further round trips. Because the grid holds the
weights 1 and 0 (the order of one list alone), the tuned fusion is never below the best single mode on the
queries it was tuned on; `holdout` reports it on queries it did not see as well.

Document-level aggregation: a document ranks by its best chunk (`max`, the default) or by the sum of its
chunks' scores (`sum`, which favours documents that match in several places).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pipeline.evaluate import Judgement, mean_scores, score_query
from pipeline.index import Fusion, Hit, both_lists, fuse

MODES = ("bm25", "knn", "hybrid")
AGGREGATES = ("max", "sum")
WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))
RANK_CONSTANTS = (10, 60)


@dataclass
class Run:
    """One judged query's two rankings."""

    relevant: list[str]
    lexical: list[Hit]
    semantic: list[Hit]


@dataclass
class Tuning:
    fusion: Fusion
    aggregate: str
    scores: dict[str, float]  # the chosen fusion's
    modes: dict[str, dict[str, float]]  # bm25, knn and plain hybrid on the same queries, for comparison
    tried: list[tuple[str, dict[str, float]]] = field(default_factory=list)
    queries: int = 0

    def as_setting(self) -> dict:
        return {
            "fusion": self.fusion.as_dict(),
            "aggregate": self.aggregate,
            "scores": self.scores,
            "modes": self.modes,
            "queries": self.queries,
        }


def collect_runs(
    es, alias: str, tenant: str, judged: list[Judgement], encoder, fetch: int, progress: Callable | None = None
) -> list[Run]:
    """Both lists of every query, as a hybrid search of `fetch` chunks fetches them (fetch more than k:
    several chunks of one document count once)."""
    vectors = encoder.encode([q.query for q in judged])
    runs = []
    for q, vector in zip(judged, vectors, strict=True):
        lexical, semantic = both_lists(es, alias, tenant, q.query, vector.tolist(), fetch)  # a search's window
        runs.append(Run(q.relevant, lexical, semantic))
        if progress is not None:
            progress()
    return runs


def document_ranking(hits: Sequence[Hit], aggregate: str = "max") -> list[str]:
    """Chunk hits → document sources, best first."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"unknown aggregation {aggregate!r}: use one of {', '.join(AGGREGATES)}")
    if aggregate == "max":
        return list(dict.fromkeys(h.source for h in hits))
    totals: dict[str, float] = {}
    for h in hits:
        totals[h.source] = totals.get(h.source, 0.0) + h.score
    return sorted(totals, key=lambda s: -totals[s])  # stable: a tie keeps the better-ranked document first


def ranked(run: Run, mode: str, fusion: Fusion, fetch: int) -> list[Hit]:
    if mode == "bm25":
        return run.lexical
    if mode == "knn":
        return run.semantic
    return fuse(run.lexical, run.semantic, fetch, fusion)


def score_runs(runs: list[Run], mode: str, k: int, fusion: Fusion, aggregate: str = "max") -> dict[str, float]:
    fetch = max((max(len(r.lexical), len(r.semantic)) for r in runs), default=k)
    return mean_scores(
        [score_query(document_ranking(ranked(r, mode, fusion, fetch), aggregate), r.relevant, k) for r in runs]
    )


def candidates() -> list[Fusion]:
    grid = [Fusion("rrf", w, c) for c in RANK_CONSTANTS for w in WEIGHTS]
    return grid + [Fusion("score", w) for w in WEIGHTS]


def tune(runs: list[Run], k: int, aggregate: str = "max") -> Tuning:
    """The fusion with the best MRR@k (then nDCG@k); among equals, the one nearest plain RRF."""
    if not runs:
        raise ValueError("tuning needs at least one judged query")
    tried = [(f, score_runs(runs, "hybrid", k, f, aggregate)) for f in candidates()]

    def merit(item: tuple[Fusion, dict[str, float]]):
        f, s = item
        return (
            round(s["mrr"], 9),
            round(s["ndcg"], 9),
            -abs(f.lexical_weight - 0.5),
            f.method == "rrf",
            -abs(f.rank_constant - 60),
        )

    best, scores = max(tried, key=merit)
    modes = {mode: score_runs(runs, mode, k, Fusion(), aggregate) for mode in MODES}
    return Tuning(best, aggregate, scores, modes, [(f.label(), s) for f, s in tried], len(runs))


def holdout(runs: list[Run], k: int, aggregate: str = "max", folds: int = 2) -> dict[str, dict[str, float]]:
    """Tuned on all but one fold, scored on that fold, folds averaged: what tuning buys on unseen queries."""
    folds = max(2, min(folds, len(runs)))
    parts = [runs[i::folds] for i in range(folds)]
    per_query: dict[str, list[dict[str, float]]] = {mode: [] for mode in (*MODES, "tuned")}
    for i, test in enumerate(parts):
        train = [r for j, part in enumerate(parts) if j != i for r in part]
        fusion = tune(train, k, aggregate).fusion
        for mode in MODES:
            per_query[mode] += [score_runs([r], mode, k, Fusion(), aggregate) for r in test]
        per_query["tuned"] += [score_runs([r], "hybrid", k, fusion, aggregate) for r in test]
    return {mode: mean_scores(scores) for mode, scores in per_query.items()}
