"""Leak-free neighbours: passages retrieved from the live index for each training or evaluation example.

Rules, applied as Elasticsearch filters and checked again against SQL on every hit:
- never the example's own document: --id-col matched against Document.source (equal, or a suffix that
  starts at a separator: "a0.txt" is "/data/a0.txt", "rec-1" is "feed:rec-1", but "1" is not "rec-11");
- never a member of its near-duplicate cluster: the clusters of its own documents, and of any indexed
  document its text duplicates (MinHash, the same test ingest applies), so an unlinked copy is caught too;
- with a time column, never a document published after the example (undated documents are allowed
  unless allow_undated is off).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.dedup import Deduplicator
from pipeline.index import hybrid
from pipeline.retrieve import tenant_fusion
from pipeline.store.dedupstore import SqlDedupStore
from pipeline.store.models import Document
from pipeline.types import as_utc

QUERY_WORDS = 32  # the head of a text is enough to find its topic, and keeps BM25 queries cheap


@dataclass
class LeakRule:
    docs: set[str] = field(default_factory=set)
    clusters: set[str] = field(default_factory=set)
    not_after: datetime | None = None

    def __post_init__(self) -> None:
        if self.not_after is not None:
            self.not_after = as_utc(self.not_after)  # SQLite hands back naive UTC datetimes

    def allows(self, doc_id: str, cluster_id: str | None, published: datetime | None, allow_undated: bool) -> bool:
        if doc_id in self.docs or (cluster_id and cluster_id in self.clusters):
            return False
        if self.not_after is not None:
            if published is None:
                return allow_undated
            return as_utc(published) <= self.not_after
        return True

    def filters(self, allow_undated: bool) -> list[dict]:
        must_not: list[dict] = []
        if self.docs:
            must_not.append({"terms": {"doc_id": sorted(self.docs)}})
        if self.clusters:
            must_not.append({"terms": {"cluster_id": sorted(self.clusters)}})
        out: list[dict] = [{"bool": {"must_not": must_not}}] if must_not else []
        if self.not_after is not None:
            before: dict = {"range": {"published": {"lte": self.not_after.isoformat()}}}
            if allow_undated:
                undated = {"bool": {"must_not": [{"exists": {"field": "published"}}]}}
                out.append({"bool": {"should": [before, undated], "minimum_should_match": 1}})
            else:
                out.append(before)
        return out


@dataclass
class Neighbour:
    chunk_id: str
    doc_id: str
    source: str
    text: str
    score: float


@dataclass
class NeighbourSet:
    index: str | None
    k: int
    rows: list[list[Neighbour]]  # rows[i]: neighbours of example i (file order)
    blocked_after_search: int = 0  # hits the Elasticsearch filters let through and SQL caught

    def passages(self, row: int) -> list[str]:
        return [n.text for n in self.rows[row]]

    def ids_hash(self) -> str:
        blob = json.dumps([[n.chunk_id for n in row] for row in self.rows], separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def count(self) -> int:
        return sum(len(row) for row in self.rows)

    def to_json(self) -> str:
        return json.dumps(
            {
                "index": self.index,
                "k": self.k,
                "hash": self.ids_hash(),
                "blocked_after_search": self.blocked_after_search,
                "rows": [[asdict(n) for n in row] for row in self.rows],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> NeighbourSet:
        raw = json.loads(text)
        return cls(
            raw["index"],
            raw["k"],
            [[Neighbour(**n) for n in row] for row in raw["rows"]],
            raw.get("blocked_after_search", 0),
        )


def source_keys(source: str) -> Iterator[str]:
    """The source itself and every suffix that starts at, or just after, a separator."""
    yield source
    for i, ch in enumerate(source):
        if not ch.isalnum() and i + 1 < len(source):
            yield source[i:]
            yield source[i + 1 :]


def own_documents(session: Session, tenant: str, ids: list[str | None]) -> dict[str, list[tuple[str, str]]]:
    """example id -> [(doc id, cluster id)] of the tenant's documents whose source it names."""
    wanted = {i for i in ids if i}
    found: dict[str, list[tuple[str, str]]] = {}
    if not wanted:
        return found
    rows = session.execute(
        select(Document.id, Document.source, Document.cluster_id)
        .where(Document.tenant == tenant)
        .execution_options(yield_per=5000)
    )
    for doc_id, source, cluster in rows:
        for key in set(source_keys(source)) & wanted:
            found.setdefault(key, []).append((doc_id, cluster))
    return found


def leak_rules(
    session: Session,
    tenant: str,
    texts: list[str],
    ids: list[str | None],
    times: list[datetime | None],
    dedup: dict | None = None,
) -> list[LeakRule]:
    owners = own_documents(session, tenant, ids)
    checker = Deduplicator(SqlDedupStore(session), **(dedup or {}))
    rules = []
    for text, ex_id, ts in zip(texts, ids, times):
        rule = LeakRule(not_after=as_utc(ts) if ts else None)
        for doc_id, cluster in owners.get(ex_id or "", []):
            rule.docs.add(doc_id)
            rule.clusters.add(cluster)
        verdict = checker.check(tenant, "", text)  # read-only: registers nothing
        if verdict.duplicate_of:
            rule.docs.add(verdict.duplicate_of)
            rule.clusters.add(verdict.cluster_id or verdict.duplicate_of)
        rules.append(rule)
    return rules


def retrieve(
    session: Session,
    es,
    index: str,
    tenant: str,
    encoder,
    texts: list[str],
    rules: list[LeakRule],
    k: int,
    allow_undated: bool = True,
    heartbeat: Callable[[int], None] | None = None,
    parallel: int = 4,
) -> NeighbourSet:
    """Up to k passages per text (one per document), best first, each allowed by the text's rule."""
    queries = [" ".join(t.split()[:QUERY_WORDS]) for t in texts]
    vectors = encoder.encode(queries)
    fusion = tenant_fusion(session, tenant)  # as the tenant's own searches fuse
    fetch = 3 * k + 5  # room for several chunks of one document

    def search(i: int):
        return hybrid(
            es,
            index,
            tenant,
            queries[i],
            vectors[i].tolist(),
            fetch,
            window=max(4 * fetch, 20),
            filters=rules[i].filters(allow_undated),
            fusion=fusion,
        )

    raw = []
    # a few searches in flight: Elasticsearch serves them in parallel, the round trips overlap
    pool = ThreadPoolExecutor(max_workers=max(1, parallel))
    try:
        for i, hits in enumerate(pool.map(search, range(len(queries)))):  # map keeps the order
            raw.append(hits)
            if heartbeat is not None:
                heartbeat(i + 1)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # a cancelled job stops queueing searches
    meta = _documents(session, {h.doc_id for hits in raw for h in hits})
    rows, blocked = [], 0
    for hits, rule in zip(raw, rules):
        row, seen = [], set()
        for h in hits:
            cluster, published, status = meta.get(h.doc_id, (None, None, None))
            if status is None or not rule.allows(h.doc_id, cluster, published, allow_undated):
                blocked += 1  # the filter missed it (or SQL no longer knows it): never use it
                continue
            if h.doc_id in seen:
                continue
            seen.add(h.doc_id)
            row.append(Neighbour(h.chunk_id, h.doc_id, h.source, h.text, round(h.score, 6)))
            if len(row) == k:
                break
        rows.append(row)
    return NeighbourSet(index, k, rows, blocked)


def _documents(session: Session, doc_ids: set[str]) -> dict[str, tuple]:
    ids, out = sorted(doc_ids), {}
    for i in range(0, len(ids), 500):
        for doc_id, cluster, published, status in session.execute(
            select(Document.id, Document.cluster_id, Document.published, Document.status).where(
                Document.id.in_(ids[i : i + 500])
            )
        ):
            out[doc_id] = (cluster, published, status)
    return out


def neighbour_vectors(es, index: str, neighbours: NeighbourSet, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, k, dims) index embeddings of each example's neighbours and a (rows, k) mask of those present."""
    wanted = sorted({n.chunk_id for row in neighbours.rows for n in row})
    found: dict[str, list[float]] = {}
    for i in range(0, len(wanted), 500):
        resp = es.mget(index=index, ids=wanted[i : i + 500], source=["embedding"])
        for doc in resp["docs"]:
            vector = (doc.get("_source") or {}).get("embedding") if doc.get("found") else None
            if vector is not None and len(vector) == dims:
                found[doc["_id"]] = vector
    k = max(neighbours.k, 1)
    vectors = np.zeros((len(neighbours.rows), k, dims), dtype=np.float32)
    mask = np.zeros((len(neighbours.rows), k), dtype=np.int64)
    for r, row in enumerate(neighbours.rows):
        for c, n in enumerate(row[:k]):
            if n.chunk_id in found:
                vectors[r, c], mask[r, c] = found[n.chunk_id], 1
    return vectors, mask
