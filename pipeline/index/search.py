"""Tenant-scoped lexical, vector and hybrid (fused, see fusion.py) search over chunks.

Every query carries the tenant as a filter; for kNN the filter sits inside the `knn`
clause so the k nearest are chosen among the tenant's own chunks, not cut from the
global k nearest afterwards (which can leave a tenant with nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from elasticsearch import Elasticsearch

from pipeline.index.filters import facet_aggs, read_facets
from pipeline.index.fusion import DEFAULT_FUSION, Fusion, fuse
from pipeline.index.guard import guard
from pipeline.index.hits import Hit

# The search API takes a list of fields for _source; the client's typing admits only a bool or a mapping.
_FIELDS: Any = ["chunk_id", "doc_id", "source", "ordinal", "text", "title", "pages", "language"]
# Every chunk's text and title under the standard analyzer, and under its language's own where it has one (each
# field analyses the query its own way, so "Haus" meets the German stem of "Häuser"); best_fields scores a chunk
# by its best field. Wildcards keep the list short and take in languages added to the mapping later.
LEXICAL_FIELDS = ["text", "text_*", "title^2", "title_*^2"]
# Elasticsearch's ceiling for num_candidates (and therefore for k).
_MAX_CANDIDATES = 10_000


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
    window: int | None = None,
    filters: list[dict] | None = None,
    num_candidates: int | None = None,
    fusion: Fusion = DEFAULT_FUSION,
) -> list[Hit]:
    """BM25 and kNN fetched separately (`window` hits each), fused here (pipeline/index/fusion.py).

    Needs no licence and behaves the same on every Elasticsearch 8/9 deployment.
    """
    lexical, semantic = both_lists(es, alias, tenant, query, vector, k, window, filters, num_candidates)
    return fuse(lexical, semantic, k, fusion)


def both_lists(
    es: Elasticsearch,
    alias: str,
    tenant: str,
    query: str,
    vector: Sequence[float],
    k: int,
    window: int | None = None,
    filters: list[dict] | None = None,
    num_candidates: int | None = None,
) -> tuple[list[Hit], list[Hit]]:
    """The two rankings a hybrid search fuses, `window` hits each (tuning fuses them many ways)."""
    window = _window(k, window)
    return bm25(es, alias, tenant, query, window, filters), knn(
        es, alias, tenant, vector, window, num_candidates, filters
    )


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


def facet_counts(
    es: Elasticsearch, alias: str, tenant: str, keys: Sequence[str], filters: list[dict] | None = None, size: int = 10
) -> dict[str, list[dict]]:
    """Documents per value of each key among the tenant's chunks that pass `filters` (pipeline/index/filters.py)."""
    aggs = facet_aggs(keys, size)
    if not aggs:
        return {}
    with guard("facet counts"):
        query = {"bool": {"filter": _filters(tenant, filters)}}
        resp = es.search(index=alias, query=query, size=0, aggs=aggs, track_total_hits=False)
    return read_facets(resp.get("aggregations"), keys)


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
            "must": [{"multi_match": {"query": query, "fields": LEXICAL_FIELDS}}],
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
                pages=[int(p) for p in src.get("pages") or []],
                language=src.get("language"),
            )
        )
    return hits
