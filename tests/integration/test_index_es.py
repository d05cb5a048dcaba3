"""pipeline.index against a live Elasticsearch API (noida-db, started per module)."""

from __future__ import annotations

import json
import pickle
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig, ObjectApiResponse
from elasticsearch import ApiError, Elasticsearch

from cli.localstack.processes import free_port, start_noida
from pipeline.errors import BulkIndexError, ConfigError, ServiceUnavailable
from pipeline.index import (
    IndexLayout,
    bm25,
    chunk_action,
    count_chunks,
    delete_stale_chunks,
    hybrid,
    hybrid_rrf_retriever,
    knn,
    refresh,
    write_chunks,
)
from pipeline.types import chunk_id, document_id

pytestmark = pytest.mark.integration

DIMS = 8
QUERY_VECTOR = [1.0, 0, 0, 0, 0, 0, 0, 0]


@dataclass
class Server:
    url: str
    knn: bool  # honours the search API's top-level `knn` option (with its filter)
    validates: bool  # rejects documents that do not fit the mapping


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    noida = start_noida(tmp_path_factory.mktemp("noida"))
    try:
        with Elasticsearch(noida.elasticsearch_url, request_timeout=30) as es:
            knn_ok, validates = probe(es)
        yield Server(noida.elasticsearch_url, knn_ok, validates)
    finally:
        noida.stop()


@pytest.fixture(scope="module")
def es(server):
    with Elasticsearch(server.url, request_timeout=30) as client:
        yield client


@pytest.fixture
def needs_knn(server):
    if not server.knn:
        # the pin excludes noida-db 0.2.2, which ignores `knn`: a server without kNN is a broken setup
        pytest.fail("this Elasticsearch-compatible server ignores the search API's `knn` option")


def probe(es: Elasticsearch) -> tuple[bool, bool]:
    """What the server under test implements, asked directly rather than guessed from versions."""
    es.indices.create(
        index="probe-caps",
        mappings={
            "properties": {
                "tenant": {"type": "keyword"},
                "embedding": {"type": "dense_vector", "dims": 2, "index": True, "similarity": "cosine"},
            }
        },
    )
    try:
        resp = es.bulk(
            index="probe-caps",
            refresh=True,
            operations=[
                {"index": {"_id": "ok"}},
                {"tenant": "a", "embedding": [1.0, 0.0]},
                {"index": {"_id": "bad"}},
                {"tenant": "a", "embedding": [1.0, 0.0, 0.0]},
            ],
        )
        validates = resp["items"][1]["index"]["status"] >= 400
        found = es.search(
            index="probe-caps",
            knn={
                "field": "embedding",
                "query_vector": [1.0, 0.0],
                "k": 1,
                "num_candidates": 10,
                "filter": {"term": {"tenant": "b"}},
            },
        )
        return not found["hits"]["hits"], validates
    finally:
        es.indices.delete(index="probe-caps")


def chunk(tenant: str, source: str, ordinal: int, text: str, vector: list[float], **extra) -> dict:
    doc = document_id(tenant, source)
    return {
        "tenant": tenant,
        "doc_id": doc,
        "ordinal": ordinal,
        "source": source,
        "content_type": "txt",
        "title": extra.pop("title", None),
        "text": text,
        "char_start": ordinal * 100,
        "char_end": ordinal * 100 + len(text),
        "content_hash": extra.pop("content_hash", "h1"),
        "embedding": vector,
        **extra,
    }


def cid(tenant: str, source: str, ordinal: int) -> str:
    return chunk_id(tenant, document_id(tenant, source), ordinal)


def vec(*head: float) -> list[float]:
    return [float(x) for x in head] + [0.0] * (DIMS - len(head))


# --- a shared three-tenant corpus -------------------------------------------------------------

WARRANTY, BUDGET = "acme/warranty.txt", "acme/budget.txt"
A0, A1, A2, A3 = cid("acme", WARRANTY, 0), cid("acme", WARRANTY, 1), cid("acme", BUDGET, 0), cid("acme", BUDGET, 1)


def corpus_chunks() -> list[dict]:
    acme = [
        chunk("acme", WARRANTY, 0, "inverter warranty claims", vec(0.8, 0.6), published="2024-01-10"),
        chunk("acme", WARRANTY, 1, "solar panel cleaning and inverter reset", vec(0.6, 0.8), published="2024-01-10"),
        chunk("acme", BUDGET, 0, "quarterly budget review", vec(0, 0, 1), published="2023-05-01"),
        chunk("acme", BUDGET, 1, "warranty terms for batteries", vec(0.3, 0, 0, 0.954), published="2023-05-01"),
    ]
    # globex holds the vectors nearest the query and the strongest text match: any filter
    # applied after the global top-k (instead of inside knn) would leave acme with nothing.
    globex = [
        chunk("globex", f"globex/{i}.txt", 0, "inverter warranty claims inverter warranty claims", vec(1, 0.01 * i))
        for i in range(6)
    ]
    initech = [chunk("initech", "initech/a.txt", i, "inverter warranty", vec(0.9, 0.1 * (i + 1))) for i in range(2)]
    return acme + globex + initech


@pytest.fixture(scope="module")
def corpus(es):
    layout = IndexLayout(es, "search-chunks")
    layout.ensure_live(DIMS)
    report = write_chunks(es, (chunk_action(layout.write_alias, c) for c in corpus_chunks()))
    assert report.failures == [] and report.ok == 12
    refresh(es, layout.write_alias)
    return layout


def tenants_of(hits) -> set[str]:
    owners = {document_id(c["tenant"], c["source"]): c["tenant"] for c in corpus_chunks()}
    return {owners[h.doc_id] for h in hits}


def test_bm25_is_tenant_scoped_and_ranks_the_exact_match_first(es, corpus):
    hits = bm25(es, corpus.read_alias, "acme", "inverter warranty claims", k=10)
    assert tenants_of(hits) == {"acme"}
    assert hits[0].chunk_id == A0
    assert {h.chunk_id for h in hits} == {A0, A1, A3}  # the budget review matches no term
    assert [h.rank for h in hits] == [1, 2, 3]
    assert hits[0].score >= hits[1].score >= hits[2].score
    assert hits[0].text == "inverter warranty claims" and hits[0].source == WARRANTY


def test_bm25_filters(es, corpus):
    hits = bm25(es, corpus.read_alias, "acme", "warranty", k=10, filters=[{"term": {"source": BUDGET}}])
    assert [h.chunk_id for h in hits] == [A3]


def test_knn_filter_is_inside_the_knn_clause(es, corpus, needs_knn):
    hits = knn(es, corpus.read_alias, "acme", QUERY_VECTOR, k=3)
    assert [h.chunk_id for h in hits] == [A0, A1, A3]  # cosine 0.8, 0.6, 0.3
    assert hits[0].score > hits[1].score > hits[2].score
    assert tenants_of(knn(es, corpus.read_alias, "initech", QUERY_VECTOR, k=5)) == {"initech"}


def test_knn_filters(es, corpus, needs_knn):
    by_source = knn(es, corpus.read_alias, "acme", QUERY_VECTOR, k=3, filters=[{"term": {"source": BUDGET}}])
    assert [h.chunk_id for h in by_source] == [A3, A2]
    recent = knn(
        es, corpus.read_alias, "acme", QUERY_VECTOR, k=3, filters=[{"range": {"published": {"gte": "2024-01-01"}}}]
    )
    assert [h.chunk_id for h in recent] == [A0, A1]


@pytest.mark.parametrize("search", [hybrid, hybrid_rrf_retriever])
def test_hybrid_is_tenant_scoped_and_fuses(es, corpus, needs_knn, search):
    hits = search(es, corpus.read_alias, "acme", "inverter warranty claims", QUERY_VECTOR, k=3)
    assert tenants_of(hits) == {"acme"}
    assert len(hits) == 3
    assert hits[0].chunk_id == A0  # first in both lists
    assert [h.rank for h in hits] == [1, 2, 3]
    if search is hybrid:
        assert hits[0].score == pytest.approx(2 / 61)


# --- versions and aliases ---------------------------------------------------------------------


def alias_map(es, alias: str) -> dict:
    return {index: body["aliases"][alias] for index, body in es.indices.get_alias(name=alias).body.items()}


def test_ensure_live_twice_gives_one_index_and_both_aliases(es):
    layout = IndexLayout(es, "live-chunks")
    assert layout.live_index() is None and layout.versions() == []
    first = layout.ensure_live(DIMS)
    assert layout.ensure_live(DIMS) == first == "live-chunks-v1"
    assert layout.versions() == ["live-chunks-v1"]
    assert list(alias_map(es, layout.read_alias)) == [first]
    writers = alias_map(es, layout.write_alias)
    assert list(writers) == [first] and writers[first].get("is_write_index") is True
    with pytest.raises(ConfigError):
        layout.ensure_live(16)  # the live index cannot take another encoder's vectors


def test_ensure_live_concurrently(es):
    layout = IndexLayout(es, "race-chunks")
    with ThreadPoolExecutor(6) as pool:
        live = set(pool.map(lambda _: layout.ensure_live(DIMS), range(6)))
    assert live == {"race-chunks-v1"}
    assert layout.versions() == ["race-chunks-v1"]
    assert list(alias_map(es, layout.write_alias)) == ["race-chunks-v1"]


def test_create_version_numbers_and_idempotence(es):
    layout = IndexLayout(es, "ver-chunks")
    assert layout.create_version(DIMS) == "ver-chunks-v1"
    assert layout.create_version(DIMS) == "ver-chunks-v2"
    assert layout.create_version(DIMS, n=10) == "ver-chunks-v10"
    assert layout.create_version(DIMS, n=2) == "ver-chunks-v2"  # same mapping: fine
    with pytest.raises(ConfigError):
        layout.create_version(16, n=2)
    assert layout.create_version(DIMS, n=3, extra={"encoder": "model-b"}) == "ver-chunks-v3"
    with pytest.raises(ConfigError):
        layout.create_version(DIMS, n=3)  # built for another encoder
    assert layout.versions() == ["ver-chunks-v1", "ver-chunks-v2", "ver-chunks-v3", "ver-chunks-v10"]
    assert layout.create_version(DIMS) == "ver-chunks-v11"


def test_swap_moves_both_aliases_in_one_update(es, monkeypatch):
    layout = IndexLayout(es, "swap-chunks")
    old = layout.ensure_live(DIMS)
    write_chunks(es, [chunk_action(layout.write_alias, chunk("acme", "old.txt", 0, "old copy", vec(1)))])
    new = layout.create_version(DIMS)
    write_chunks(es, [chunk_action(new, chunk("acme", "new.txt", 0, "new copy", vec(1)))])
    refresh(es, old)
    refresh(es, new)

    calls = []
    real = es.indices.update_aliases
    monkeypatch.setattr(es.indices, "update_aliases", lambda **kw: calls.append(kw) or real(**kw))
    assert layout.swap(new) == old
    assert len(calls) == 1
    assert list(alias_map(es, layout.read_alias)) == [new]
    assert list(alias_map(es, layout.write_alias)) == [new]
    assert alias_map(es, layout.write_alias)[new].get("is_write_index") is True
    assert layout.live_index() == new

    assert [h.source for h in bm25(es, layout.read_alias, "acme", "copy", k=5)] == ["new.txt"]
    write_chunks(es, [chunk_action(layout.write_alias, chunk("acme", "later.txt", 0, "later copy", vec(1)))])
    refresh(es, new)
    assert count_chunks(es, new) == 2 and count_chunks(es, old) == 1

    with pytest.raises(ConfigError):
        layout.drop(new)  # live
    layout.drop(old)
    assert layout.versions() == [new]
    with pytest.raises(ConfigError):
        layout.swap("swap-chunks-v9")  # does not exist


# --- writing ----------------------------------------------------------------------------------


def test_delete_stale_chunks_removes_only_other_hashes(es):
    layout = IndexLayout(es, "stale-chunks")
    layout.ensure_live(DIMS)
    alias = layout.write_alias
    old = [chunk("acme", "d.txt", i, f"old part {i}", vec(1, i), content_hash="h1") for i in range(4)]
    other = [chunk("acme", "e.txt", i, f"other {i}", vec(1, i), content_hash="h1") for i in range(3)]
    write_chunks(es, (chunk_action(alias, c) for c in old + other))
    # The document shrinks to two chunks; ordinals 0-1 are overwritten, 2-3 are now stale.
    new = [chunk("acme", "d.txt", i, f"new part {i}", vec(1, i), content_hash="h2") for i in range(2)]
    assert write_chunks(es, (chunk_action(alias, c) for c in new)).ok == 2
    doc_d, doc_e = document_id("acme", "d.txt"), document_id("acme", "e.txt")

    assert delete_stale_chunks(es, alias, "acme", doc_d, "h2") == 2
    assert count_chunks(es, alias, "acme", doc_d) == 2
    kept = es.search(index=alias, query={"term": {"doc_id": doc_d}}, sort=["ordinal"])["hits"]["hits"]
    assert [h["_id"] for h in kept] == [cid("acme", "d.txt", 0), cid("acme", "d.txt", 1)]
    assert count_chunks(es, alias, "acme", doc_e) == 3

    assert delete_stale_chunks(es, alias, "acme", doc_d, None) == 2
    assert count_chunks(es, alias, "acme", doc_d) == 0
    assert count_chunks(es, alias, "acme") == 3
    assert delete_stale_chunks(es, alias, "globex", doc_e, None) == 0  # doc of another tenant


def test_rewriting_the_same_ids_is_an_upsert(es):
    layout = IndexLayout(es, "upsert-chunks")
    layout.ensure_live(DIMS)
    # The ingest step also passes the id among the fields; it must not end up in _source.
    chunks = [chunk("acme", "u.txt", i, f"first {i}", vec(1, i), _id=cid("acme", "u.txt", i)) for i in range(5)]
    assert write_chunks(es, (chunk_action(layout.write_alias, c) for c in chunks), chunk_size=2).ok == 5
    refresh(es, layout.write_alias)
    assert count_chunks(es, layout.read_alias) == 5
    again = [dict(c, text=f"second {c['ordinal']}") for c in chunks]
    assert write_chunks(es, (chunk_action(layout.write_alias, c) for c in again)).ok == 5
    refresh(es, layout.write_alias)
    assert count_chunks(es, layout.read_alias, "acme", document_id("acme", "u.txt")) == 5
    doc = es.get(index=layout.read_alias, id=cid("acme", "u.txt", 3))
    assert doc["_source"]["text"] == "second 3" and doc["_source"]["chunk_id"] == cid("acme", "u.txt", 3)
    assert "_id" not in doc["_source"]
    with pytest.raises(ValueError):
        chunk_action(layout.write_alias, dict(chunks[0], _id="someone-else-00000"))


def test_mapping_rejections_come_back_per_item(es, server):
    if not server.validates:
        pytest.fail("this Elasticsearch-compatible server accepts documents that do not fit the mapping")
    layout = IndexLayout(es, "reject-chunks")
    layout.ensure_live(DIMS)
    chunks = [chunk("acme", "r.txt", i, f"part {i}", vec(1, i)) for i in range(5)]
    chunks[1]["embedding"] = [1.0, 0.0, 0.0]  # wrong dimension
    chunks[3]["char_start"] = "not a number"  # wrong type
    report = write_chunks(es, (chunk_action(layout.write_alias, c) for c in chunks))
    assert report.ok == 3
    assert sorted(f["_id"] for f in report.failures) == [cid("acme", "r.txt", 1), cid("acme", "r.txt", 3)]
    for failure in report.failures:
        assert failure["status"] == 400
        assert failure["error"]["type"] and failure["error"]["reason"]
    refresh(es, layout.write_alias)
    assert count_chunks(es, layout.read_alias) == 3


def test_a_conflict_comes_back_per_item(es):
    layout = IndexLayout(es, "conflict-chunks")
    layout.ensure_live(DIMS)
    first = chunk("acme", "c.txt", 0, "part 0", vec(1))
    write_chunks(es, [chunk_action(layout.write_alias, first)])
    actions = [dict(chunk_action(layout.write_alias, first), _op_type="create")]
    actions += [chunk_action(layout.write_alias, chunk("acme", "c.txt", i, f"part {i}", vec(1, i))) for i in (1, 2)]
    report = write_chunks(es, actions)
    assert report.ok == 2
    assert [(f["_id"], f["status"]) for f in report.failures] == [(cid("acme", "c.txt", 0), 409)]
    assert report.failures[0]["error"]["type"] == "version_conflict_engine_exception"


# --- failure injection: the real client, wrapped ----------------------------------------------


class Throttle:
    """Refuses the next `failures` bulk calls (429 by default), as a whole request or item by item."""

    def __init__(self, failures: int, mode: str, status: int = 429, error: str = "circuit_breaking_exception"):
        self.left, self.mode, self.calls, self.status, self.error = failures, mode, 0, status, error

    def refuse(self, operations: list) -> ObjectApiResponse:
        meta = ApiResponseMeta(
            status=self.status if self.mode == "request" else 200,
            http_version="1.1",
            headers=HttpHeaders(),
            duration=0.0,
            node=NodeConfig("http", "127.0.0.1", 9200),
        )
        if self.mode == "request":
            cause = {"type": self.error, "reason": f"refused by the test ({self.status})"}
            raise ApiError(
                self.error, meta=meta, body={"error": {**cause, "root_cause": [cause]}, "status": self.status}
            )
        items, lines = [], [json.loads(line) for line in operations]
        i = 0
        while i < len(lines):
            op, header = next(iter(lines[i].items()))
            items.append(
                {
                    op: {
                        "_index": "x",
                        "_id": header.get("_id"),
                        "status": 429,
                        "error": {
                            "type": "es_rejected_execution_exception",
                            "reason": "rejected execution of coordinating operation",
                        },
                    }
                }
            )
            i += 1 if op == "delete" else 2
        return ObjectApiResponse(body={"took": 0, "errors": True, "items": items}, meta=meta)


class ThrottledElasticsearch(Elasticsearch):
    throttle: Throttle

    def options(self, *args, **kwargs):
        # streaming_bulk sends through es.options(...), a fresh client of this same class.
        clone = super().options(*args, **kwargs)
        clone.throttle = self.throttle
        return clone

    def bulk(self, *args, **kwargs):
        self.throttle.calls += 1
        if self.throttle.left > 0:
            self.throttle.left -= 1
            return self.throttle.refuse(kwargs["operations"])
        return super().bulk(*args, **kwargs)


def throttled(server, failures: int, mode: str, **refusal) -> ThrottledElasticsearch:
    client = ThrottledElasticsearch(server.url, request_timeout=30)
    client.throttle = Throttle(failures, mode, **refusal)
    return client


@pytest.mark.parametrize("mode", ["request", "items"])
def test_429_is_retried_then_succeeds(es, server, mode):
    layout = IndexLayout(es, f"throttle-{mode}-chunks")
    layout.ensure_live(DIMS)
    client = throttled(server, failures=2, mode=mode)
    chunks = [chunk("acme", "t.txt", i, f"part {i}", vec(1, i)) for i in range(5)]
    report = write_chunks(
        client, (chunk_action(layout.write_alias, c) for c in chunks), max_retries=3, initial_backoff=0.01
    )
    assert (report.ok, report.failures) == (5, [])
    assert client.throttle.calls == 3
    refresh(es, layout.write_alias)
    assert count_chunks(es, layout.read_alias) == 5


@pytest.mark.parametrize("mode", ["request", "items"])
def test_429_after_all_retries_raises_a_retryable_error(es, server, mode):
    layout = IndexLayout(es, f"overload-{mode}-chunks")
    layout.ensure_live(DIMS)
    client = throttled(server, failures=100, mode=mode)
    chunks = [chunk("acme", "o.txt", i, f"part {i}", vec(1, i)) for i in range(3)]
    with pytest.raises(BulkIndexError) as caught:
        write_chunks(client, (chunk_action(layout.write_alias, c) for c in chunks), max_retries=2, initial_backoff=0.01)
    err = caught.value
    assert err.retryable and client.throttle.calls == 3
    assert err.failures and {f["status"] for f in err.failures} == {429}
    assert {f["_id"] for f in err.failures} <= {cid("acme", "o.txt", i) for i in range(3)}
    assert pickle.loads(pickle.dumps(err)).failures == err.failures  # crosses Celery intact


@pytest.mark.parametrize(
    "status, error, expected",
    [
        (503, "unavailable_shards_exception", None),  # retried like a 429, then written
        (500, "null_pointer_exception", BulkIndexError),  # not retried, but an outage, not bad data
        (401, "security_exception", ConfigError),
    ],
)
def test_a_refused_request_is_never_dead_lettered(es, server, status, error, expected):
    layout = IndexLayout(es, f"refused-{status}-chunks")
    layout.ensure_live(DIMS)
    client = throttled(server, failures=1, mode="request", status=status, error=error)
    actions = [chunk_action(layout.write_alias, chunk("acme", "f.txt", i, "part", vec(1, i))) for i in range(2)]
    if expected is None:
        assert write_chunks(client, actions, initial_backoff=0.01).ok == 2
    else:
        with pytest.raises(expected):
            write_chunks(client, actions, initial_backoff=0.01)
        assert client.throttle.calls == 1


def test_unreachable_cluster_is_service_unavailable():
    with Elasticsearch(f"http://127.0.0.1:{free_port()}", max_retries=0, request_timeout=2) as dead:
        with pytest.raises(ServiceUnavailable) as caught:
            write_chunks(dead, [chunk_action("x-write", chunk("acme", "z.txt", 0, "z", vec(1)))])
        assert caught.value.retryable
        with pytest.raises(ServiceUnavailable):
            bm25(dead, "x-read", "acme", "z", k=3)
        with pytest.raises(ServiceUnavailable):
            IndexLayout(dead, "x").ensure_live(DIMS)


def test_a_write_block_is_waited_out_not_taken_for_credentials_or_bad_data(es):
    """`index.blocks.write` (an operator's, or the flood-stage disk watermark's): the write and the delete raise
    a retryable error that says what to do; on the last try the refused chunks come back for dead letters."""
    layout = IndexLayout(es, "blocked-chunks")
    layout.ensure_live(DIMS)
    physical = next(iter(es.indices.get_alias(name=layout.write_alias)))
    actions = [chunk_action(layout.write_alias, chunk("acme", "b.txt", i, "part", vec(1, i))) for i in range(2)]
    assert write_chunks(es, actions, initial_backoff=0.01).ok == 2  # so that the delete below has chunks to delete
    es.indices.put_settings(index=physical, settings={"index.blocks.write": True})
    try:
        with pytest.raises(BulkIndexError) as caught:
            write_chunks(es, actions, initial_backoff=0.01)
        assert caught.value.retryable
        assert "blocks writes" in caught.value.message and "index.blocks" in caught.value.message
        report = write_chunks(es, actions, initial_backoff=0.01, give_up_retryable=True)
        assert report.ok == 0 and {f["error"]["type"] for f in report.failures} == {"cluster_block_exception"}
        with pytest.raises(ServiceUnavailable) as caught_delete:  # was ConfigError: "refused the credentials"
            delete_stale_chunks(es, layout.write_alias, "acme", document_id("acme", "b.txt"), None)
        assert "blocks writes" in caught_delete.value.message
    finally:
        es.indices.put_settings(index=physical, settings={"index.blocks.write": None})
    assert write_chunks(es, actions, initial_backoff=0.01).ok == 2
