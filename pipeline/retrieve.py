"""Search use case: BM25, kNN and hybrid over the read alias, always within one tenant."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from pipeline.errors import PermanentError
from pipeline.index import DEFAULT_FUSION, Fusion, Hit, bm25, hybrid, hybrid_rrf_retriever, knn
from pipeline.index.filters import where_clauses
from pipeline.index.search import facet_counts
from pipeline.store.tenants import get_setting

log = logging.getLogger(__name__)
FUSION_SETTING = "search_fusion"  # the tenant setting `docpipe eval-search --tune` stores

MODES = ("bm25", "knn", "hybrid")


class SearchRefused(PermanentError):
    """A search asked for something docpipe does not do (an unknown mode, k out of bounds)."""


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise SearchRefused(f"unknown search mode {mode!r}: use one of {', '.join(MODES)}")


MAX_QUERY_CHARS = 1000


def check_query(query: str) -> str:
    """The query as searched (whitespace runs made one space), or SearchRefused when there is nothing to search."""
    q = " ".join((query or "").split())
    if not q:
        raise SearchRefused("the query is empty: give words to search for")
    if len(q) > MAX_QUERY_CHARS:
        raise SearchRefused(f"the query has {len(q)} characters: search with at most {MAX_QUERY_CHARS}")
    if "\x00" in q:
        raise SearchRefused("the query contains a NUL character: remove it")
    return q


def check_search(mode: str, k: int, max_k: int, query: str | None = None) -> None:
    """The one check of a search request, shared by the CLI and the API so both refuse alike.

    max_k is DOCPIPE_API_MAX_K; Elasticsearch's own result window (10,000) is far above any sane value of it.
    The query, when given, is checked by check_query.
    """
    check_mode(mode)
    if query is not None:
        check_query(query)
    if not 1 <= k <= max_k:
        raise SearchRefused(f"k must be between 1 and {max_k} (DOCPIPE_API_MAX_K), got {k}")


def search(
    es,
    alias: str,
    tenant: str,
    query: str,
    mode: str,
    k: int,
    encoder=None,
    filters: list[dict] | None = None,
    server_rrf: bool = False,
    fusion: Fusion = DEFAULT_FUSION,
) -> list[Hit]:
    check_mode(mode)
    if mode == "bm25":
        return bm25(es, alias, tenant, query, k, filters=filters)
    vector = encoder.encode([query])[0].tolist()
    if mode == "knn":
        return knn(es, alias, tenant, vector, k, filters=filters)
    if server_rrf and fusion.is_plain_rrf:
        return hybrid_rrf_retriever(es, alias, tenant, query, vector, k, fusion.rank_constant, filters=filters)
    return hybrid(es, alias, tenant, query, vector, k, filters=filters, fusion=fusion)


@dataclass
class SearchResult:
    hits: list[Hit]
    facets: dict[str, list[dict]] = field(default_factory=dict)  # key -> [{"value", "count"}], documents per value


def filtered_search(
    es,
    alias: str,
    tenant: str,
    query: str,
    mode: str,
    k: int,
    encoder=None,
    *,
    where: Sequence[str] = (),
    facets: Sequence[str] = (),
    filters: list[dict] | None = None,
    facet_size: int = 10,
    server_rrf: bool = False,
    fusion: Fusion = DEFAULT_FUSION,
) -> SearchResult:
    """A search with metadata filters (`where`: "desk=markets", "n<5", see pipeline/index/filters.py) applied to
    both rankings, kNN included, and document counts per value of the `facets` keys among the chunks the filters
    keep. `filters` are clauses made elsewhere (labels, sources). FilterError for a filter or facet it cannot read."""
    clauses = [*(filters or []), *where_clauses(where)]
    counts = facet_counts(es, alias, tenant, facets, clauses, facet_size) if facets else {}
    hits = search(es, alias, tenant, query, mode, k, encoder, clauses or None, server_rrf, fusion)
    return SearchResult(hits, counts)


def tenant_fusion(session: Session, tenant: str) -> Fusion:
    """The hybrid fusion tuned for the tenant, else plain RRF."""
    stored = get_setting(session, tenant, FUSION_SETTING)
    if not stored:
        return DEFAULT_FUSION
    try:
        return Fusion.from_dict(stored.get("fusion"))
    except (TypeError, ValueError) as exc:  # a hand-edited row must not break the tenant's searches
        log.warning("tenant %s has an unusable search fusion (%s): plain RRF used", tenant, exc)
        return DEFAULT_FUSION
