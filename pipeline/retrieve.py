"""Search use case: BM25, kNN and hybrid over the read alias, always within one tenant."""

from __future__ import annotations

from pipeline.index import Hit, bm25, hybrid, hybrid_rrf_retriever, knn

MODES = ("bm25", "knn", "hybrid")


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
    if mode not in MODES:
        raise ValueError(f"unknown search mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "bm25":
        return bm25(es, alias, tenant, query, k, filters=filters)
    vector = encoder.encode([query])[0].tolist()
    if mode == "knn":
        return knn(es, alias, tenant, vector, k, filters=filters)
    fuse = hybrid_rrf_retriever if server_rrf else hybrid
    return fuse(es, alias, tenant, query, vector, k, filters=filters)
