"""The chunk index's mapping and settings, and a stable fingerprint of them."""

from __future__ import annotations

import hashlib
import json

from pipeline.errors import ConfigError
from pipeline.language import language_fields, title_of_text_field

DEFAULT_PREFIX = "docpipe-chunks"

# `text` and `title` hold every chunk, whatever its language, so they get the analyzer that suits them all; a
# chunk's language adds its own stemmed copy in text_<code>/title_<code> (docs/languages.md).
TEXT_ANALYZER = "standard"

# Elasticsearch 8.10+ caps indexed dense_vector fields at 4096 dimensions.
MAX_DIMS = 4096

_KEYWORD = {"type": "keyword"}
_INTEGER = {"type": "integer"}
_DATE = {"type": "date"}


# Every metadata value as a string (equality, any-of, facets) in one field whatever the keys;
# numbers and ISO dates also as typed values, one dynamic field per key (docs/metadata.md).
META_PROPERTIES: dict = {
    "meta": {"type": "flattened"},
    "meta_num": {"type": "object", "dynamic": True},
    "meta_date": {"type": "object", "dynamic": True},
}
META_TEMPLATES: list = [
    {"meta_num": {"path_match": "meta_num.*", "mapping": {"type": "double"}}},
    {"meta_date": {"path_match": "meta_date.*", "mapping": {"type": "date"}}},
]


ENTITY_PROPERTIES: dict = {"entities": _KEYWORD, "entity_text": _KEYWORD}


def mapping(dims: int) -> dict:
    """Mapping of one physical chunk index for embeddings of `dims` dimensions."""
    if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= MAX_DIMS:
        raise ConfigError(f"embedding dims must be an integer in 1..{MAX_DIMS}, got {dims!r}")
    return {
        # Unknown fields are kept in _source but not indexed, so a later feature can add a
        # field to its documents before the mapping update (or reindex) that makes it searchable.
        "dynamic": False,
        # User metadata (pipeline/metadata.py): the numbers and dates of meta_num/meta_date get one
        # fixed type per key, so a key never meets a conflicting mapping and ranges compare as values.
        "dynamic_templates": META_TEMPLATES,
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
            **_language_properties(),
            "language": _KEYWORD,
            "pages": _INTEGER,  # the PDF pages a chunk lies on (an array)
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
            # Named entities of the chunk (docpipe extract, pipeline/infer/extract.py): "ORG:Acme Corp" and "Acme Corp"
            **ENTITY_PROPERTIES,
            **META_PROPERTIES,
            "embedding": {
                "type": "dense_vector",
                "dims": dims,
                "index": True,
                "similarity": "cosine",
                "index_options": {"type": "hnsw", "m": 16, "ef_construction": 100},
            },
        },
    }


def _language_properties() -> dict:
    """text_<code> and title_<code> per language with an analyzer of its own; a chunk fills its language's pair."""
    props: dict = {}
    for field, analyzer in sorted(language_fields().items()):
        props[field] = {"type": "text", "analyzer": analyzer}
        props[title_of_text_field(field)] = {"type": "text", "analyzer": analyzer}
    return props


def index_settings(shards: int = 1, replicas: int | None = None) -> dict:
    """Settings for a new physical index; replicas None leaves the cluster default."""
    settings: dict = {"number_of_shards": shards}
    # Past the field limit a new metadata key is left unmapped (kept in _source, not range-filterable)
    # instead of failing the chunk that brought it (Elasticsearch 8.13+).
    settings["mapping.total_fields.ignore_dynamic_beyond_limit"] = True
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
