"""The DedupStore contract, run against every store through the Deduplicator that consumes it.

A subclass provides the `store` fixture and, for a store that does not keep the document rows
itself (the SQL store: ingest writes them), how the caller keeps, deletes and reopens them.
File names here do not start with test_: only the subclasses under tests/unit and
tests/integration are collected.
"""

from __future__ import annotations

import random
import uuid

import pytest
from sqlalchemy.orm import Session

from pipeline.dedup import Deduplicator, DedupStore, band_keys
from pipeline.store import repo
from pipeline.store.db import session_factory
from pipeline.store.dedupstore import SqlDedupStore, pack_signature
from pipeline.store.models import Document, Job, JobState
from pipeline.types import DedupVerdict, document_id

THRESHOLD = 0.8
_VOCAB = [f"w{i}" for i in range(5000)]


def text_of(n_words: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(_VOCAB) for _ in range(n_words))


def with_words_changed(text: str, positions: list[int]) -> str:
    words = text.split()
    for p in positions:
        words[p] = f"edited{p}"
    return " ".join(words)


class DedupStoreContract:
    """What every DedupStore must do for the Deduplicator; tenants are fresh per test."""

    @pytest.fixture
    def store(self) -> DedupStore:
        raise NotImplementedError("a subclass provides the store under test")

    # --- how the caller treats the document rows; a RowRecorder keeps them itself -------------

    def keep_row(self, store: DedupStore, tenant: str, doc_id: str, verdict: DedupVerdict) -> None:
        """Write the document row as ingest does, before the Deduplicator registers the verdict."""

    def delete_document(self, store: DedupStore, tenant: str, doc_id: str) -> None:
        store.remove(tenant, doc_id)

    # --- helpers ------------------------------------------------------------------------------

    @pytest.fixture
    def tenant(self) -> str:
        return f"t-{uuid.uuid4().hex[:8]}"

    @pytest.fixture
    def other_tenant(self) -> str:
        return f"u-{uuid.uuid4().hex[:8]}"

    def put(self, store: DedupStore, tenant: str, source: str, text: str) -> tuple[str, DedupVerdict]:
        """One document through check and register, the way ingest places it."""
        dedup = Deduplicator(store, threshold=THRESHOLD)
        doc_id = document_id(tenant, source)
        verdict = dedup.check(tenant, doc_id, text)
        self.keep_row(store, tenant, doc_id, verdict)
        dedup.register(tenant, doc_id, verdict)
        return doc_id, verdict

    # --- the contract ---------------------------------------------------------------------------

    def test_first_document_is_canonical_and_heads_its_own_cluster(self, store, tenant):
        doc, verdict = self.put(store, tenant, "a.txt", text_of(200, 1))
        assert verdict.duplicate_of is None and verdict.kind is None
        assert verdict.cluster_id == doc

    def test_exact_copy_is_found_within_the_tenant(self, store, tenant):
        text = text_of(200, 2)
        first, _ = self.put(store, tenant, "a.txt", text)
        _, verdict = self.put(store, tenant, "b.txt", "  " + text.upper().replace(" ", "\n "))
        assert (verdict.kind, verdict.duplicate_of, verdict.cluster_id) == ("exact", first, first)
        assert verdict.similarity == 1.0

    def test_exact_copy_in_another_tenant_is_not_a_duplicate(self, store, tenant, other_tenant):
        text = text_of(200, 3)
        self.put(store, tenant, "a.txt", text)
        doc, verdict = self.put(store, other_tenant, "a.txt", text)
        assert verdict.duplicate_of is None and verdict.cluster_id == doc
        assert store.find_exact(other_tenant, verdict.content_hash, exclude_doc="") == (doc, doc)

    def test_near_copy_above_the_threshold_is_found(self, store, tenant):
        text = text_of(300, 4)
        first, _ = self.put(store, tenant, "a.txt", text)
        _, verdict = self.put(store, tenant, "b.txt", with_words_changed(text, [100, 200]))
        assert (verdict.kind, verdict.duplicate_of, verdict.cluster_id) == ("near", first, first)
        assert THRESHOLD <= verdict.similarity < 1.0

    def test_text_below_the_threshold_is_not_a_duplicate(self, store, tenant):
        text = text_of(300, 5)
        self.put(store, tenant, "a.txt", text)
        # every 20th word edited: estimated Jaccard about 0.6, near enough to share some buckets
        doc, verdict = self.put(store, tenant, "b.txt", with_words_changed(text, list(range(0, 300, 20))))
        assert verdict.duplicate_of is None and verdict.cluster_id == doc

    def test_near_copy_in_another_tenant_is_not_a_candidate(self, store, tenant, other_tenant):
        text = text_of(300, 6)
        self.put(store, tenant, "a.txt", text)
        doc, verdict = self.put(store, other_tenant, "b.txt", with_words_changed(text, [150]))
        assert verdict.duplicate_of is None and verdict.cluster_id == doc

    def test_cluster_id_is_the_canonical_and_shared_by_exact_and_near_copies(self, store, tenant):
        text = text_of(300, 7)
        head, _ = self.put(store, tenant, "head.txt", text)
        near_text = with_words_changed(text, [50])
        _, near = self.put(store, tenant, "near.txt", near_text)
        _, exact = self.put(store, tenant, "exact.txt", text)
        # a copy of a duplicate joins the canonical's cluster: duplicates are never match targets
        _, copy_of_near = self.put(store, tenant, "copy-of-near.txt", near_text)
        assert {near.cluster_id, exact.cluster_id, copy_of_near.cluster_id} == {head}
        assert {near.duplicate_of, exact.duplicate_of, copy_of_near.duplicate_of} == {head}
        _, again = self.put(store, tenant, "head.txt", text)  # the canonical itself, re-ingested
        assert again.duplicate_of is None and again.cluster_id == head

    def test_re_adding_the_same_document_is_idempotent(self, store, tenant):
        text = text_of(300, 8)
        doc, first = self.put(store, tenant, "a.txt", text)
        _, second = self.put(store, tenant, "a.txt", text)
        assert second.duplicate_of is None, "a document never duplicates its own earlier entry"
        assert (second.cluster_id, second.content_hash, second.signature) == (doc, first.content_hash, first.signature)
        dedup = Deduplicator(store, threshold=THRESHOLD)
        found = store.candidates(tenant, band_keys(first.signature, dedup.bands, dedup.rows), exclude_doc="")
        assert [(d, c) for d, c, _ in found] == [(doc, doc)]
        assert found[0][2] == first.signature
        assert store.find_exact(tenant, first.content_hash, exclude_doc="") == (doc, doc)
        assert store.find_exact(tenant, first.content_hash, exclude_doc=doc) is None

    def test_edited_document_does_not_match_its_old_version(self, store, tenant):
        text = text_of(300, 9)
        doc, _ = self.put(store, tenant, "a.txt", text)
        _, edited = self.put(store, tenant, "a.txt", with_words_changed(text, [10]))
        assert edited.duplicate_of is None and edited.cluster_id == doc
        # its buckets were replaced: the old text now matches the new version only by similarity
        _, copy_of_old = self.put(store, tenant, "b.txt", text)
        assert (copy_of_old.kind, copy_of_old.duplicate_of) == ("near", doc)

    def test_removed_document_is_forgotten(self, store, tenant):
        text = text_of(300, 10)
        gone, _ = self.put(store, tenant, "a.txt", text)
        self.delete_document(store, tenant, gone)
        heir, verdict = self.put(store, tenant, "b.txt", text)
        assert verdict.duplicate_of is None and verdict.cluster_id == heir
        _, near = self.put(store, tenant, "c.txt", with_words_changed(text, [20]))
        assert (near.kind, near.duplicate_of, near.cluster_id) == ("near", heir, heir)

    def test_canonical_edited_into_a_duplicate_stops_being_a_match_target(self, store, tenant):
        a_text, b_text = text_of(300, 11), text_of(300, 12)
        a, _ = self.put(store, tenant, "a.txt", a_text)
        b, _ = self.put(store, tenant, "b.txt", b_text)
        _, b_now = self.put(store, tenant, "b.txt", a_text)
        assert (b_now.kind, b_now.duplicate_of) == ("exact", a)
        doc, verdict = self.put(store, tenant, "c.txt", with_words_changed(b_text, [30]))
        assert verdict.duplicate_of is None and verdict.cluster_id == doc


class SqlDedupStoreContract(DedupStoreContract):
    """The SQL store over a migrated database named by the `dedup_sql_url` fixture.

    Ingest owns the document rows: it writes content hash, signature, status, cluster and the job that read it
    last, drops the buckets of a document that became a duplicate, and a deleted source becomes status
    "deleted" without buckets. keep_row and delete_document do the same here, with the rows read by one
    open job of the tenant's.
    """

    @pytest.fixture
    def dedup_sql_url(self) -> str:
        raise NotImplementedError("a subclass provides a migrated database")

    @pytest.fixture
    def store(self, dedup_sql_url):
        self._sessions: list[Session] = []
        self._url = dedup_sql_url
        yield self._open()
        for session in self._sessions:
            session.commit()
            session.close()

    def _open(self) -> SqlDedupStore:
        session = session_factory(self._url)()
        self._sessions.append(session)
        return SqlDedupStore(session)

    def reading_job(self, store, tenant) -> str:
        """The open job that reads the tenant's rows here (one per test and tenant)."""
        jobs = self.__dict__.setdefault("_jobs", {})
        if tenant not in jobs:
            jobs[tenant] = repo.create_job(store.session, tenant, []).id
        return jobs[tenant]

    def keep_row(self, store, tenant, doc_id, verdict):
        session = store.session
        job_id = self.reading_job(store, tenant)
        doc = session.get(Document, doc_id)
        if doc is None:
            doc = Document(id=doc_id, tenant=tenant, source=doc_id, content_type="txt", text="", cluster_id=doc_id)
            session.add(doc)
        doc.last_job_id = job_id
        doc.content_hash, doc.signature = verdict.content_hash, pack_signature(verdict.signature)
        if verdict.duplicate_of:
            doc.status, doc.duplicate_of, doc.cluster_id = "duplicate", verdict.duplicate_of, verdict.cluster_id
            store.remove(tenant, doc_id)
        else:
            doc.status, doc.duplicate_of, doc.cluster_id = "chunked", None, verdict.cluster_id or doc_id
        session.flush()

    def delete_document(self, store, tenant, doc_id):
        store.session.get(Document, doc_id).status = "deleted"
        store.remove(tenant, doc_id)
        store.session.flush()

    def reopen(self, store):
        """A new store instance over the same persistent state."""
        store.session.commit()
        return self._open()

    def test_state_persists_across_store_instances(self, store, tenant):
        text = text_of(300, 13)
        first, _ = self.put(store, tenant, "a.txt", text)
        fresh = self.reopen(store)
        _, exact = self.put(fresh, tenant, "b.txt", text)
        _, near = self.put(fresh, tenant, "c.txt", with_words_changed(text, [40]))
        assert (exact.kind, exact.duplicate_of) == ("exact", first)
        assert (near.kind, near.duplicate_of, near.cluster_id) == ("near", first, first)

    @pytest.mark.parametrize("ended", [JobState.FAILED, JobState.CANCELLED, JobState.PARTIAL])
    def test_a_document_an_ended_job_left_unindexed_is_no_original(self, store, tenant, ended):
        text = text_of(300, 17)
        first, _ = self.put(store, tenant, "a.txt", text)
        store.session.get(Job, self.reading_job(store, tenant)).state = ended  # `first` stays chunked for good
        self.__dict__["_jobs"].pop(tenant)  # the copies come with a new job
        copy, exact = self.put(store, tenant, "b.txt", text)
        _, near = self.put(store, tenant, "c.txt", with_words_changed(text, [40]))
        assert exact.duplicate_of is None  # a copy elsewhere is indexed, not hidden behind the orphan
        assert (near.kind, near.duplicate_of) == ("near", copy)
        store.session.get(Document, copy).status = "indexed"
        store.session.get(Job, self.reading_job(store, tenant)).state = ended  # indexed stays an original
        _, again = self.put(store, tenant, "d.txt", text)
        assert (again.kind, again.duplicate_of) == ("exact", copy)
