"""The chunk index's mapping and settings, and a stable fingerprint of them."""

from __future__ import annotations

import hashlib
import json

from pipeline.errors import ConfigError

DEFAULT_PREFIX = "docpipe-chunks"

# The corpus is English prose: stemming lets "indexing" find "indexed" and plural forms,
# which matters more for recall than exactness on the odd non-English document.
TEXT_ANALYZER = "english"

# Elasticsearch 8.10+ caps indexed dense_vector fields at 4096 dimensions.
MAX_DIMS = 4096

_KEYWORD = {"type": "keyword"}
_INTEGER = {"type": "integer"}
_DATE = {"type": "date"}


def mapping(dims: int) -> dict:
    """Mapping of one physical chunk index for embeddings of `dims` dimensions."""
    if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= MAX_DIMS:
        raise ConfigError(f"embedding dims must be an integer in 1..{MAX_DIMS}, got {dims!r}")
    return {
        # Unknown fields are kept in _source but not indexed, so a later feature can add a
        # field to its documents before the mapping update (or reindex) that makes it searchable.
        "dynamic": False,
        "properties": {
            "tenant": _KEYWORD,
            "doc_id": _KEYWORD,
            "chunk_id": _KEYWORD,
            "ordinal": _INTEGER,
            "source": _KEYWORD,
            "content_type": _KEYWORD,
            "title": {
                "type": "text",
                "analyzer": TEXT_ANALYZER,
                # Keeps sorting and exact filters on titles possible without indexing giant ones.
                "fields": {"keyword": {"type": "keyword", "ignore_above": 1024}},
            },
            "text": {"type": "text", "analyzer": TEXT_ANALYZER},
            "published": _DATE,
            "indexed_at": _DATE,
            "char_start": _INTEGER,
            "char_end": _INTEGER,
            "content_hash": _KEYWORD,
            "cluster_id": _KEYWORD,
            "label": _KEYWORD,
            # Per-label scores are read back, never queried: not indexing them keeps the
            # mapping from growing a field per label.
            "label_scores": {"type": "object", "enabled": False},
            "embedding": {
                "type": "dense_vector",
                "dims": dims,
                "index": True,
                "similarity": "cosine",
                "index_options": {"type": "hnsw", "m": 16, "ef_construction": 100},
            },
        },
    }


def index_settings(shards: int = 1, replicas: int | None = None) -> dict:
    """Settings for a new physical index; replicas None leaves the cluster default."""
    settings: dict = {"number_of_shards": shards}
    if replicas is not None:
        settings["number_of_replicas"] = replicas
    return settings


def config_hash(mapping: dict, extra: dict | None = None) -> str:
    """sha256 of the canonical JSON of a mapping plus anything else that shapes the index.

    Key order and whitespace must not matter, so that two processes building the same
    mapping agree on the hash; values that are not plain JSON raise TypeError rather than
    being stringified into a hash that could silently change between releases.
    """
    canonical = json.dumps(
        {"mapping": mapping, "extra": extra or {}},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()
