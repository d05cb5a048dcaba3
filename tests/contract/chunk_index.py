"""The chunk-index contract: docpipe's own index functions against one Elasticsearch-compatible server.

A subclass provides the `es` fixture (a client of the server under test). Every test gets its own
index prefix, so tests share a server without seeing each other's chunks.
"""

from __future__ import annotations

import uuid

import pytest
from elasticsearch import NotFoundError

from pipeline.index import (
    IndexLayout,
    bm25,
    chunk_action,
    count_chunks,
    delete_stale_chunks,
    hybrid,
    knn,
    refresh,
    write_chunks,
)
from pipeline.types import chunk_id, document_id

DIMS = 8
QUERY_VECTOR = [1.0, 0, 0, 0, 0, 0, 0, 0]


def vec(*head: float) -> list[float]:
    return [float(x) for x in head] + [0.0] * (DIMS - len(head))


def chunk(tenant: str, source: str, ordinal: int, text: str, vector: list[float], content_hash: str = "h1") -> dict:
    return {
        "tenant": tenant,
        "doc_id": document_id(tenant, source),
        "ordinal": ordinal,
        "source": source,
        "content_type": "txt",
        "title": None,
        "text": text,
        "char_start": 0,
        "char_end": len(text),
        "content_hash": content_hash,
        "cluster_id": document_id(tenant, source),
        "embedding": vector,
    }


def cid(tenant: str, source: str, ordinal: int) -> str:
    return chunk_id(tenant, document_id(tenant, source), ordinal)


# A big tenant holds the nearest vectors and the strongest text matches: a tenant filter applied
# after the global top k (instead of inside the query or the knn clause) leaves the small one empty.
BIG = [chunk("globex", f"g{i}.txt", 0, "solar inverter warranty " * 3, vec(1, 0.01 * i)) for i in range(20)]
SMALL = [
    chunk("acme", "a.txt", 0, "solar inverter warranty claims", vec(0.8, 0.6)),
    chunk("acme", "a.txt", 1, "cleaning solar panels", vec(0.6, 0.8)),
    chunk("acme", "b.txt", 0, "warranty for batteries", vec(0.3, 0, 0.954)),
]
SMALL_IDS = [cid("acme", "a.txt", 0), cid("acme", "a.txt", 1), cid("acme", "b.txt", 0)]


class ChunkIndexContract:
    @pytest.fixture
    def es(self):
        raise NotImplementedError("a subclass provides a client of the server under test")

    @pytest.fixture
    def layout(self, es):
        layout = IndexLayout(es, f"contract-{uuid.uuid4().hex[:10]}")
        layout.ensure_live(DIMS)
        yield layout
        for index in layout.versions():
            es.indices.delete(index=index)

    def write(self, es, target: str, chunks: list[dict]) -> None:
        report = write_chunks(es, [chunk_action(target, c) for c in chunks])
        assert report.failures == [] and report.ok == len(chunks)
        refresh(es, target)

    @staticmethod
    def source(es, alias: str, chunk: str) -> dict:
        return es.get(index=alias, id=chunk)["_source"]

    def test_same_ids_twice_keep_one_copy_with_the_new_content(self, es, layout):
        first = [chunk("acme", "a.txt", i, f"alpha part {i}", vec(1, i)) for i in range(3)]
        second = [chunk("acme", "a.txt", i, f"bravo part {i}", vec(i, 1), "h2") for i in range(3)]
        self.write(es, layout.write_alias, first)
        self.write(es, layout.write_alias, second)
        assert count_chunks(es, layout.read_alias, "acme", document_id("acme", "a.txt")) == 3
        assert bm25(es, layout.read_alias, "acme", "alpha", k=10) == []
        assert sorted(h.chunk_id for h in bm25(es, layout.read_alias, "acme", "bravo", k=10)) == [
            cid("acme", "a.txt", i) for i in range(3)
        ]
        got = self.source(es, layout.read_alias, cid("acme", "a.txt", 2))
        assert (got["text"], got["content_hash"], got["embedding"]) == ("bravo part 2", "h2", vec(2, 1))

    def test_re_ingested_document_loses_only_its_stale_chunks(self, es, layout):
        doc = document_id("acme", "a.txt")
        old = [chunk("acme", "a.txt", i, f"old part {i}", vec(1, i)) for i in range(3)]
        bystanders = [chunk("acme", "b.txt", 0, "other doc", vec(0, 1)), chunk("globex", "a.txt", 0, "x", vec(1))]
        self.write(es, layout.write_alias, old + bystanders)
        self.write(es, layout.write_alias, [chunk("acme", "a.txt", i, f"new {i}", vec(1, i), "h2") for i in range(2)])
        assert delete_stale_chunks(es, layout.write_alias, "acme", doc, "h2") == 1
        hits = bm25(es, layout.read_alias, "acme", "new part", k=10)
        assert sorted(h.ordinal for h in hits if h.doc_id == doc) == [0, 1]
        assert count_chunks(es, layout.read_alias, "acme", doc) == 2
        assert count_chunks(es, layout.read_alias, "acme") == 3 and count_chunks(es, layout.read_alias, "globex") == 1
        assert delete_stale_chunks(es, layout.write_alias, "acme", doc, None) == 2  # a document gone for good
        assert count_chunks(es, layout.read_alias, "acme", doc) == 0
        assert count_chunks(es, layout.read_alias) == 2

    def test_bm25_is_filtered_by_tenant(self, es, layout):
        self.write(es, layout.write_alias, BIG + SMALL)
        hits = bm25(es, layout.read_alias, "acme", "solar inverter warranty", k=5)
        assert sorted(h.chunk_id for h in hits) == sorted(SMALL_IDS)
        assert hits[0].chunk_id == SMALL_IDS[0]  # the only chunk with all three terms
        assert {h.doc_id for h in bm25(es, layout.read_alias, "globex", "solar", k=5)} <= {c["doc_id"] for c in BIG}
        assert len(bm25(es, layout.read_alias, "globex", "solar", k=5)) == 5

    def test_knn_tenant_filter_sits_inside_the_knn_clause(self, es, layout):
        self.write(es, layout.write_alias, BIG + SMALL)
        hits = knn(es, layout.read_alias, "acme", QUERY_VECTOR, k=3)
        assert [h.chunk_id for h in hits] == SMALL_IDS  # cosine 0.8, 0.6, 0.3: all k, in order
        assert hits[0].score > hits[1].score > hits[2].score
        assert len(knn(es, layout.read_alias, "acme", QUERY_VECTOR, k=10)) == 3
        assert {h.doc_id for h in knn(es, layout.read_alias, "globex", QUERY_VECTOR, k=4)} <= {c["doc_id"] for c in BIG}

    def test_hybrid_is_filtered_by_tenant_and_fills_k(self, es, layout):
        self.write(es, layout.write_alias, BIG + SMALL)
        hits = hybrid(es, layout.read_alias, "acme", "solar inverter warranty", QUERY_VECTOR, k=3)
        assert sorted(h.chunk_id for h in hits) == sorted(SMALL_IDS)
        assert hits[0].chunk_id == SMALL_IDS[0]  # first in both lists
        assert [h.rank for h in hits] == [1, 2, 3]

    def test_alias_swap_moves_readers_and_writers_to_the_new_version_at_once(self, es, layout):
        old = layout.live_index()
        self.write(es, layout.write_alias, [chunk("acme", "a.txt", 0, "old wording", vec(1))])
        new = layout.create_version(DIMS)
        assert layout.version_of(new) == layout.version_of(old) + 1
        self.write(es, new, [chunk("acme", "a.txt", 0, "new wording", vec(1))])
        assert [h.text for h in bm25(es, layout.read_alias, "acme", "wording", k=5)] == ["old wording"]
        assert layout.swap(new) == old
        for alias in (layout.read_alias, layout.write_alias):
            assert set(es.indices.get_alias(name=alias).body) == {new}
        assert layout.live_index() == new
        assert [h.text for h in bm25(es, layout.read_alias, "acme", "wording", k=5)] == ["new wording"]
        self.write(es, layout.write_alias, [chunk("acme", "b.txt", 0, "written after the swap", vec(0, 1))])
        assert count_chunks(es, new) == 2 and count_chunks(es, old) == 1
        layout.drop(old)
        assert layout.versions() == [new]
        assert layout.ensure_live(DIMS) == new

    def test_label_update_keeps_text_and_vector(self, es, layout):
        self.write(es, layout.write_alias, SMALL)
        labels = {"label": "energy", "label_scores": {"energy": 0.9, "sport": 0.1}}
        updates = [{"_op_type": "update", "_index": layout.write_alias, "_id": i, "doc": labels} for i in SMALL_IDS[:2]]
        missing = cid("acme", "never-indexed.txt", 0)
        updates.append({"_op_type": "update", "_index": layout.write_alias, "_id": missing, "doc": labels})
        report = write_chunks(es, updates)
        assert report.ok == 2 and [(f["_id"], f["status"]) for f in report.failures] == [(missing, 404)]
        refresh(es, layout.write_alias)
        for i, original in zip(SMALL_IDS[:2], SMALL[:2]):
            got = self.source(es, layout.read_alias, i)
            assert (got["text"], got["embedding"], got["tenant"]) == (original["text"], original["embedding"], "acme")
            assert (got["label"], got["label_scores"]) == ("energy", labels["label_scores"])
        assert "label" not in self.source(es, layout.read_alias, SMALL_IDS[2])
        labelled = [{"term": {"label": "energy"}}]
        assert [h.chunk_id for h in knn(es, layout.read_alias, "acme", QUERY_VECTOR, k=3, filters=labelled)] == (
            SMALL_IDS[:2]
        )
        assert [h.chunk_id for h in bm25(es, layout.read_alias, "acme", "cleaning", k=3, filters=labelled)] == [
            SMALL_IDS[1]
        ]
        with pytest.raises(NotFoundError):
            es.get(index=layout.read_alias, id=missing)  # an update never creates a chunk
