"""Tenant-scoped lexical, vector and hybrid (reciprocal rank fusion) search over chunks.

Every query carries the tenant as a filter; for kNN the filter sits inside the `knn`
clause so the k nearest are chosen among the tenant's own chunks, not cut from the
global k nearest afterwards (which can leave a tenant with nothing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from elasticsearch import Elasticsearch

from pipeline.index.guard import guard

# The search API takes a list of fields for _source; the client's typing admits only a bool or a mapping.
_FIELDS: Any = ["chunk_id", "doc_id", "source", "ordinal", "text", "title"]
# Elasticsearch's ceiling for num_candidates (and therefore for k).
_MAX_CANDIDATES = 10_000


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


def bm25(
    es: Elasticsearch, alias: str, tenant: str, query: str, k: int, filters: list[dict] | None = None
) -> list[Hit]:
    if k <= 0:
        return []
    with guard("bm25 search"):
        resp = es.search(
            index=alias, query=_lexical(tenant, query, filters), size=k, source=_FIELDS, track_total_hits=False
        )
    return _hits(resp)


def knn(
    es: Elasticsearch,
    alias: str,
    tenant: str,
    vector: Sequence[float],
    k: int,
    num_candidates: int | None = None,
    filters: list[dict] | None = None,
) -> list[Hit]:
    if k <= 0:
        return []
    with guard("knn search"):
        resp = es.search(
            index=alias,
            knn=_knn_clause(tenant, vector, k, num_candidates, filters),
            size=k,
            source=_FIELDS,
            track_total_hits=False,
        )
    return _hits(resp)


def hybrid(
    es: Elasticsearch,
    alias: str,
    tenant: str,
    query: str,
    vector: Sequence[float],
    k: int,
    rank_constant: int = 60,
    window: int | None = None,
    filters: list[dict] | None = None,
    num_candidates: int | None = None,
) -> list[Hit]:
    """BM25 and kNN fetched separately (`window` hits each), fused here with RRF.

    Needs no licence and behaves the same on every Elasticsearch 8/9 deployment.
    """
    window = _window(k, window)
    lexical = bm25(es, alias, tenant, query, window, filters)
    semantic = knn(es, alias, tenant, vector, window, num_candidates, filters)
    return rrf_fuse([lexical, semantic], k, rank_constant)


def hybrid_rrf_retriever(
    es: Elasticsearch,
    alias: str,
    tenant: str,
    query: str,
    vector: Sequence[float],
    k: int,
    rank_constant: int = 60,
    window: int | None = None,
    filters: list[dict] | None = None,
    num_candidates: int | None = None,
) -> list[Hit]:
    """The same fusion done by the server's `rrf` retriever (one round trip).

    Self-managed Elasticsearch 8 needs a paid licence for it; `hybrid` is the fallback.
    """
    if k <= 0:
        return []
    window = _window(k, window)
    retriever = {
        "rrf": {
            "retrievers": [
                {"standard": {"query": _lexical(tenant, query, filters)}},
                {"knn": _knn_clause(tenant, vector, window, num_candidates, filters)},
            ],
            "rank_window_size": window,
            "rank_constant": rank_constant,
        }
    }
    with guard("rrf retriever search"):
        resp = es.search(index=alias, retriever=retriever, size=k, source=_FIELDS)
    return _hits(resp)


def rrf_fuse(lists: list[list[Hit]], k: int, rank_constant: int = 60) -> list[Hit]:
    """Reciprocal rank fusion: score = sum over lists of 1 / (rank_constant + rank).

    Ranks are 1-based positions in each list. Equal scores keep the order in which the
    hits were first met walking the lists depth by depth (rank 1 of every list, then
    rank 2, ...), so a tie goes to the hit seen at a better rank, then to the earlier list.
    """
    if rank_constant < 1:
        raise ValueError("rank_constant must be at least 1")
    if k <= 0:
        return []
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
            parts.setdefault(key, []).append(1.0 / (rank_constant + depth + 1))
    # fsum makes the total independent of summation order, so exact ties stay ties.
    totals = {key: math.fsum(values) for key, values in parts.items()}
    order = sorted(first_seen, key=lambda key: -totals[key])
    return [replace(first_seen[key], score=totals[key], rank=rank) for rank, key in enumerate(order[:k], start=1)]


def _window(k: int, window: int | None) -> int:
    return max(window or max(k * 2, 50), k)


def _filters(tenant: str, filters: list[dict] | None) -> list[dict]:
    if not tenant:
        # An empty tenant would silently search nobody's or, with a sloppy filter, everybody's.
        raise ValueError("a search needs a tenant")
    return [{"term": {"tenant": tenant}}, *(filters or [])]


def _lexical(tenant: str, query: str, filters: list[dict] | None) -> dict:
    return {
        "bool": {
            "must": [{"multi_match": {"query": query, "fields": ["text", "title^2"]}}],
            "filter": _filters(tenant, filters),
        }
    }


def _knn_clause(
    tenant: str, vector: Sequence[float], k: int, num_candidates: int | None, filters: list[dict] | None
) -> dict:
    if num_candidates is None:
        # HNSW recall drops when the filter keeps a small share of the graph (a small
        # tenant); exploring 10x k candidates buys it back at a modest cost.
        num_candidates = max(100, 10 * k)
    num_candidates = min(max(num_candidates, k), _MAX_CANDIDATES)
    return {
        "field": "embedding",
        "query_vector": [float(x) for x in vector],
        "k": k,
        "num_candidates": num_candidates,
        "filter": _filters(tenant, filters),
    }


def _hits(resp: Any) -> list[Hit]:
    hits = []
    for position, raw in enumerate(resp["hits"]["hits"], start=1):
        src = raw.get("_source") or {}
        hits.append(
            Hit(
                chunk_id=src.get("chunk_id") or raw["_id"],
                doc_id=src.get("doc_id", ""),
                source=src.get("source", ""),
                ordinal=int(src.get("ordinal", 0)),
                score=float(raw.get("_score") or 0.0),
                text=src.get("text", ""),
                title=src.get("title"),
                rank=int(raw.get("_rank") or position),
            )
        )
    return hits
