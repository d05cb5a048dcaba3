"""Retrieval quality at document level: MRR@k, nDCG@k and recall@k over a set of judged queries."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Judgement:
    query: str
    relevant: list[str]


def load_queries(path: Path) -> list[Judgement]:
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            out.append(Judgement(str(row["query"]), [str(r) for r in row["relevant"]]))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f'{path}:{n}: expected {{"query": ..., "relevant": [...]}} ({exc})') from exc
    if not out:
        raise ValueError(f"{path} holds no queries")
    return out


def matches(source: str, relevant: str) -> bool:
    """A judgement names a source exactly or by its tail (a file name is enough)."""
    return (
        source == relevant
        or source.endswith(relevant)
        and (len(source) == len(relevant) or source[-len(relevant) - 1] in "/#\\")
    )


def ranked_documents(sources: list[str]) -> list[str]:
    """Chunk hits → documents in order of their best chunk."""
    seen: dict[str, None] = {}
    for s in sources:
        seen.setdefault(s, None)
    return list(seen)


def score_query(sources: list[str], relevant: list[str], k: int) -> dict[str, float]:
    docs = ranked_documents(sources)[:k]
    gains = [1.0 if any(matches(d, r) for r in relevant) else 0.0 for d in docs]
    found = {r for r in relevant for d in docs if matches(d, r)}
    first = next((i for i, g in enumerate(gains) if g), None)
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return {
        "mrr": 0.0 if first is None else 1.0 / (first + 1),
        "ndcg": dcg / ideal if ideal else 0.0,
        "recall": len(found) / len(relevant) if relevant else 0.0,
    }


def mean_scores(per_query: list[dict[str, float]]) -> dict[str, float]:
    keys = ("mrr", "ndcg", "recall")
    return {k: sum(q[k] for q in per_query) / len(per_query) if per_query else 0.0 for k in keys}
