"""Search use case: BM25, kNN and hybrid over the read alias, always within one tenant."""

from __future__ import annotations

from pipeline.errors import PermanentError
from pipeline.index import Hit, bm25, hybrid, hybrid_rrf_retriever, knn

MODES = ("bm25", "knn", "hybrid")


class SearchRefused(PermanentError):
    """A search asked for something docpipe does not do (an unknown mode, k out of bounds)."""


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise SearchRefused(f"unknown search mode {mode!r}: use one of {', '.join(MODES)}")


def check_search(mode: str, k: int, max_k: int) -> None:
    """The one check of a search request, shared by the CLI and the API so both refuse alike.

    max_k is DOCPIPE_API_MAX_K; Elasticsearch's own result window (10,000) is far above any sane value of it.
    """
    check_mode(mode)
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
) -> list[Hit]:
    check_mode(mode)
    if mode == "bm25":
        return bm25(es, alias, tenant, query, k, filters=filters)
    vector = encoder.encode([query])[0].tolist()
    if mode == "knn":
        return knn(es, alias, tenant, vector, k, filters=filters)
    fuse = hybrid_rrf_retriever if server_rrf else hybrid
    return fuse(es, alias, tenant, query, vector, k, filters=filters)
