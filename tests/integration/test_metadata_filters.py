"""Metadata filters and facets against a real noida-db index, and PATCH of metadata without re-embedding.

Chunks are written the way ingest writes them (chunk_source + chunk_action + write_chunks), into an index made by
IndexLayout with docpipe's own mapping; documents live in a real (migrated) SQL database for the PATCH tests.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from pipeline.documents.metadata import DocumentNotFound, patch_metadata, sync_metadata
from pipeline.index import IndexLayout, chunk_action, chunk_source, refresh, write_chunks
from pipeline.index.filters import where_clauses
from pipeline.index.search import bm25, facet_counts, knn
from pipeline.metadata import MetadataError, check_metadata
from pipeline.retrieve import filtered_search
from pipeline.store.db import session_scope
from pipeline.store.models import Document, DocumentStatus
from pipeline.types import document_id

DIMS = 4
TENANT, OTHER = "acme", "globex"
# (name, metadata, vector): m1 sits nearest to the query vector [1, 0, 0, 0], r1 farthest
CORPUS = [
    ("m1", {"desk": "markets", "n": 3, "day": "2024-02-01", "tags": ["fx", "rates"]}, [1.0, 0.0, 0.0, 0.0]),
    ("m2", {"desk": "markets", "n": "2.5", "day": "2024-01-31T22:00:00+00:00"}, [0.9, 0.1, 0.0, 0.0]),
    ("r1", {"desk": "rates", "n": 10, "day": "2023-12-01", "reviewed": True}, [0.0, 0.0, 0.0, 1.0]),
    ("e1", {"desk": "equities", "n": 40}, [0.7, 0.3, 0.0, 0.0]),
]


class Doc:
    """The Document fields chunk_source reads."""

    def __init__(self, tenant: str, name: str, meta: dict):
        self.tenant, self.source, self.id = tenant, f"mem://{name}", document_id(tenant, f"mem://{name}")
        self.content_type, self.title, self.published = "txt", name, datetime(2024, 1, 15, tzinfo=UTC)
        self.content_hash, self.cluster_id, self.meta = f"hash-{name}", self.id, check_metadata(meta)


@pytest.fixture(scope="module")
def es(noida):
    from elasticsearch import Elasticsearch

    client = Elasticsearch(f"http://127.0.0.1:{noida.es_port}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def corpus(es, sql_url):
    """Two index versions (live v1 and a v2 being built) holding the same chunks; SQL rows for the documents."""
    layout = IndexLayout(es, f"meta-{uuid.uuid4().hex[:8]}")
    live = layout.ensure_live(DIMS)
    building = layout.create_version(DIMS)
    docs = {name: Doc(TENANT, name, meta) for name, meta, _ in CORPUS}
    docs["x1"] = Doc(OTHER, "x1", {"desk": "markets", "n": 1})
    vectors = {name: vector for name, _, vector in CORPUS} | {"x1": [1.0, 0.0, 0.0, 0.0]}
    for index in (live, building):
        actions = [
            chunk_action(index, chunk_source(d, 0, 0, 10, f"report {name} on the desk", vectors[name], "2024-03-01"))
            for name, d in docs.items()
        ]
        report = write_chunks(es, actions)
        assert report.ok == len(docs) and not report.failures
        refresh(es, index)
    with session_scope(sql_url) as session:
        for d in docs.values():
            session.merge(
                Document(
                    id=d.id,
                    tenant=d.tenant,
                    source=d.source,
                    content_type="txt",
                    title=d.title,
                    text=f"report {d.title} on the desk",
                    meta=d.meta,
                    content_hash=d.content_hash,
                    status=DocumentStatus.INDEXED,
                    cluster_id=d.id,
                    chunk_count=1,
                )
            )
    return layout, live, building, docs


def names(hits, docs) -> list[str]:
    by_id = {d.id: name for name, d in docs.items()}
    return sorted(by_id[h.doc_id] for h in hits)


def lexical(es, index, docs, *where: str) -> list[str]:
    return names(bm25(es, index, TENANT, "report desk", 10, filters=where_clauses(where)), docs)


def test_equality_any_of_and_not(es, corpus):
    _, live, _, docs = corpus
    assert lexical(es, live, docs, "desk=markets") == ["m1", "m2"]  # globex's markets document stays out
    assert lexical(es, live, docs, "desk=markets,rates") == ["m1", "m2", "r1"]
    assert lexical(es, live, docs, "desk!=markets") == ["e1", "r1"]
    assert lexical(es, live, docs, "tags=rates") == ["m1"]  # a list matches on any of its values
    assert lexical(es, live, docs, "reviewed=true") == ["r1"]
    assert lexical(es, live, docs, "desk=markets", "n=3") == ["m1"]  # conditions AND


def test_numeric_ranges_compare_numbers_not_strings(es, corpus):
    _, live, _, docs = corpus
    # as strings "10" < "5" and "40" < "5": a lexicographic range would keep r1 and e1
    assert lexical(es, live, docs, "n<5") == ["m1", "m2"]
    assert lexical(es, live, docs, "n>=10") == ["e1", "r1"]
    assert lexical(es, live, docs, "n>2.5", "n<=10") == ["m1", "r1"]


def test_date_ranges_take_whole_days(es, corpus):
    _, live, _, docs = corpus
    assert lexical(es, live, docs, "day>=2024-01-01") == ["m1", "m2"]
    assert lexical(es, live, docs, "day<=2024-01-31") == ["m2", "r1"]  # m2's evening of the 31st included
    assert lexical(es, live, docs, "day<2024-01-31") == ["r1"]
    assert lexical(es, live, docs, "published>=2024-01-15", "published<2024-01-16") == ["e1", "m1", "m2", "r1"]
    assert lexical(es, live, docs, "published>2024-01-15") == []


def test_knn_filter_applies_inside_the_knn_clause(es, corpus):
    _, live, _, docs = corpus
    # the 2 nearest chunks of the tenant are m1 and m2; filtered inside the clause, kNN finds r1 anyway
    hits = knn(es, live, TENANT, [1.0, 0.0, 0.0, 0.0], 2, filters=where_clauses(["desk=rates"]))
    assert names(hits, docs) == ["r1"]
    hits = knn(es, live, TENANT, [1.0, 0.0, 0.0, 0.0], 1, filters=where_clauses(["n>=10"]))
    assert names(hits, docs) == ["e1"]  # the nearest of those with n >= 10


def test_facets_count_documents_of_the_tenant_within_the_filters(es, corpus):
    _, live, _, _ = corpus
    counts = facet_counts(es, live, TENANT, ["desk", "tags"])
    assert counts["desk"] == [
        {"value": "markets", "count": 2},
        {"value": "equities", "count": 1},
        {"value": "rates", "count": 1},
    ]
    assert counts["tags"] == [{"value": "fx", "count": 1}, {"value": "rates", "count": 1}]
    narrowed = facet_counts(es, live, TENANT, ["desk"], where_clauses(["n<5"]))
    assert narrowed == {"desk": [{"value": "markets", "count": 2}]}
    assert facet_counts(es, live, OTHER, ["desk"]) == {"desk": [{"value": "markets", "count": 1}]}


def test_filtered_search_returns_hits_and_facets(es, corpus):
    _, live, _, docs = corpus
    found = filtered_search(es, live, TENANT, "report", "bm25", 10, where=["desk=markets,rates"], facets=["desk"])
    assert names(found.hits, docs) == ["m1", "m2", "r1"]
    assert found.facets == {"desk": [{"value": "markets", "count": 2}, {"value": "rates", "count": 1}]}


def test_patch_changes_filters_in_every_version_without_touching_embeddings(es, corpus, sql_url):
    layout, live, building, docs = corpus
    m1 = docs["m1"]
    chunk = f"{m1.id}-00000"
    before = {index: es.get(index=index, id=chunk)["_source"] for index in (live, building)}
    with session_scope(sql_url) as session:
        report = patch_metadata(session, layout, TENANT, m1.id, {"desk": "rates", "n": None, "Owner": "Ann"})
    assert report.metadata == {"desk": "rates", "day": "2024-02-01", "tags": ["fx", "rates"], "owner": "Ann"}
    assert set(report.indices) >= {live, building} and report.chunks >= 2
    with session_scope(sql_url) as session:
        assert session.get(Document, m1.id).meta == report.metadata
    for index in (live, building):
        assert lexical(es, index, docs, "desk=rates") == ["m1", "r1"]
        assert lexical(es, index, docs, "n<5") == ["m2"]  # the removed key no longer matches, as string or number
        assert lexical(es, index, docs, "owner=ann") == [] and lexical(es, index, docs, "owner=Ann") == ["m1"]
        after = es.get(index=index, id=chunk)["_source"]
        assert after["embedding"] == before[index]["embedding"] and after["text"] == before[index]["text"]
    # running it again changes nothing
    with session_scope(sql_url) as session:
        again = patch_metadata(session, layout, TENANT, m1.id, {"desk": "rates", "n": None, "Owner": "Ann"})
    assert again.metadata == report.metadata
    assert lexical(es, live, docs, "desk=rates") == ["m1", "r1"]


def test_patch_refuses_other_tenants_and_over_limit_input(es, corpus, sql_url):
    layout, live, _, docs = corpus
    with session_scope(sql_url) as session, pytest.raises(DocumentNotFound):
        patch_metadata(session, layout, OTHER, docs["e1"].id, {"desk": "x"})
    with session_scope(sql_url) as session, pytest.raises(MetadataError, match="at most"):
        patch_metadata(session, layout, TENANT, docs["e1"].id, {f"k{i}": i for i in range(100)})
    assert lexical(es, live, docs, "desk=equities") == ["e1"]  # nothing changed


def test_sync_puts_sql_metadata_on_chunks_written_without_it(es, corpus, sql_url):
    layout, live, _, docs = corpus
    e1 = docs["e1"]
    # a chunk as ingest wrote it before metadata was indexed: no meta fields at all
    fields = chunk_source(e1, 0, 0, 10, "report e1 on the desk", [0.7, 0.3, 0.0, 0.0], "2024-03-01")
    bare = {k: v for k, v in fields.items() if not k.startswith("meta")}
    write_chunks(es, [chunk_action(live, bare)])
    refresh(es, live)
    assert lexical(es, live, docs, "desk=equities") == []
    with session_scope(sql_url) as session:
        sync_metadata(session, layout, TENANT)
    assert lexical(es, live, docs, "desk=equities") == ["e1"]
    assert lexical(es, live, docs, "n>=40") == ["e1"]
