"""The Elasticsearch side of docpipe: versioned chunk indices, bulk writes and search."""

from pipeline.index.aliases import IndexLayout
from pipeline.index.bulk import (
    WriteReport,
    chunk_action,
    chunk_source,
    count_chunks,
    delete_stale_chunks,
    refresh,
    text_hash,
    write_chunks,
)
from pipeline.index.fusion import DEFAULT_FUSION, Fusion, fuse, rrf_fuse, score_fuse
from pipeline.index.hits import Hit
from pipeline.index.mapping import DEFAULT_PREFIX, TEXT_ANALYZER, config_hash, index_settings, mapping
from pipeline.index.search import bm25, both_lists, hybrid, hybrid_rrf_retriever, knn

__all__ = [
    "DEFAULT_FUSION",
    "DEFAULT_PREFIX",
    "Fusion",
    "TEXT_ANALYZER",
    "Hit",
    "IndexLayout",
    "WriteReport",
    "bm25",
    "both_lists",
    "chunk_action",
    "chunk_source",
    "config_hash",
    "count_chunks",
    "delete_stale_chunks",
    "fuse",
    "hybrid",
    "hybrid_rrf_retriever",
    "index_settings",
    "knn",
    "mapping",
    "refresh",
    "rrf_fuse",
    "score_fuse",
    "text_hash",
    "write_chunks",
]
