"""The one builder of a chunk's Elasticsearch fields, shared by ingest and reindex."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np

from pipeline.index import chunk_action, chunk_source
from pipeline.types import chunk_id

DOC = SimpleNamespace(
    tenant="t1",
    id="d" * 32,
    source="/in/a.txt",
    content_type="text/plain",
    title="A",
    published=datetime(2024, 5, 1, 12, tzinfo=UTC),
    content_hash="h-now",
    cluster_id="c1",
    meta={"desk": "fx", "n": 2},
)


def test_a_chunk_carries_its_document_span_and_vector():
    fields = chunk_source(DOC, 2, 10, 40, "some text", np.array([0.5, 0.25]), "2024-05-02T00:00:00+00:00")
    action = chunk_action("docpipe-chunks-write", fields)
    assert action["_id"] == chunk_id("t1", DOC.id, 2)
    source = action["_source"]
    assert source["embedding"] == [0.5, 0.25]  # arrays become lists for the JSON body
    assert (source["published"], source["content_hash"], source["cluster_id"]) == (
        "2024-05-01T12:00:00+00:00",
        "h-now",
        "c1",
    )
    assert (source["char_start"], source["char_end"], source["text"], source["title"]) == (10, 40, "some text", "A")
    # the document's metadata, as strings and typed (pipeline/metadata.py)
    assert (source["meta"], source["meta_num"], source["meta_date"]) == ({"desk": "fx", "n": "2"}, {"n": 2.0}, {})


def test_reindex_names_the_text_the_chunk_was_cut_from():
    held = chunk_source(DOC, 0, 0, 5, "x", [0.0], "now", content_hash="h-held")
    assert held["content_hash"] == "h-held"
    undated = chunk_source(SimpleNamespace(**{**vars(DOC), "published": None}), 0, 0, 5, "x", [0.0], "now")
    assert undated["published"] is None
