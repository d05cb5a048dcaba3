"""Deleting documents: their chunks from every index version, their SQL rows and their dedup state.

The one delete path of docpipe: delete jobs (API, CLI), folder syncs and feed prunes all come here.

Order, so that a crash anywhere or a second run leaves the same end state:

1. lock the documents' rows (an UPDATE: row locks on PostgreSQL, the write lock on SQLite), so that no ingest
   batch commits them meanwhile, and refuse (retryably) documents that an open job has still to index;
2. delete their chunks from every physical index of the prefix: the live version, a version being built, the
   retired versions kept for a rollback;
3. delete their SQL rows in the caller's transaction: chunks, LSH buckets, labels, sentiments, entity mentions,
   job links, then the document. The caller commits.

A crash before the commit rolls SQL back, so a re-run finds the same documents and deletes from the indices again
(a no-op where they are gone); after the commit a re-run finds nothing. The reindex ledger keeps its rows on
purpose: a build that wrote one of these documents meanwhile (a `_reindex` copy, a batch read before the lock)
then finds a ledger row without a document and drops those chunks itself (pipeline/reindex/ledger.to_drop).

Dedup state goes with the rows: the exact-hash lookup reads the documents table and near-duplicates the
lsh_buckets table, so a later copy of the same text is indexed, not called a duplicate of a deleted document.

Duplicates of a deleted document hold the only copy of its text that is left. They are not deleted (unless
`cascade_duplicates`): each stops being a duplicate (duplicate_of cleared, its own cluster) and becomes `pending`,
so that the next ingest of its source indexes it; a folder source reads their files again at once
(pipeline/sources/sync.py). With `cascade_duplicates=True` they are deleted along, and duplicates of those too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from elasticsearch import NotFoundError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from pipeline.errors import BulkIndexError, RetryableError
from pipeline.index.aliases import IndexLayout
from pipeline.index.guard import guard
from pipeline.store.models import (
    Chunk,
    Document,
    DocumentStatus,
    IndexVersion,
    Job,
    JobDocument,
    JobState,
    LshBucket,
    Outcome,
)
from pipeline.store.models_ml import Prediction
from pipeline.store.models_monitor import DocumentSentiment, EntityMention
from pipeline.store.models_topics import DocumentTopic

IN_BATCH = 500  # ids per IN list and per delete_by_query
# versions whose index may hold chunks; dropped and discarded ones are gone from Elasticsearch
_HOLDING = ("live", "building", "retired")
# rows that belong to one document (the foreign keys cascade too; SQL's cascade is not relied on)
_DEPENDENTS = (
    (Chunk, Chunk.document_id),
    (LshBucket, LshBucket.document_id),
    (Prediction, Prediction.document_id),
    (DocumentSentiment, DocumentSentiment.document_id),
    (EntityMention, EntityMention.document_id),
    (DocumentTopic, DocumentTopic.document_id),
    (JobDocument, JobDocument.document_id),
)
_UNSYNCED = {"synchronize_session": False}


class DocumentsBusy(RetryableError):
    """An open job still has to index some of the documents: deleting them now would race its write."""


@dataclass
class DeleteReport:
    documents: list[str] = field(default_factory=list)  # deleted: those asked for, and duplicates cascaded
    chunks: int = 0  # their chunk rows in SQL
    index_chunks: int = 0  # chunks deleted from Elasticsearch, every version together
    indices: list[str] = field(default_factory=list)  # the physical indices cleaned
    orphans: list[str] = field(default_factory=list)  # duplicates of deleted documents, now pending
    missing: list[str] = field(default_factory=list)  # asked for, but not a document of the tenant

    def metrics(self) -> dict:
        return {
            "deleted_documents": len(self.documents),
            "deleted_chunks": self.chunks,
            "index_chunks_deleted": self.index_chunks,
            "orphaned_duplicates": len(self.orphans),
        }


def batches(ids: list[str], size: int = IN_BATCH) -> Iterator[list[str]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def delete_documents(
    session: Session, layout: IndexLayout, tenant: str, doc_ids: list[str], *, cascade_duplicates: bool = False
) -> DeleteReport:
    """Delete the tenant's documents among `doc_ids` (see the module's docstring); the caller commits.

    Raises DocumentsBusy (retryable) when an open job has still to index one of them; ids of other tenants or of
    no document are left alone and listed in the report's `missing`."""
    report = DeleteReport()
    asked = list(dict.fromkeys(doc_ids))
    if not asked:
        return report
    found = _lock(session, tenant, asked)
    report.missing = [d for d in asked if d not in found]
    if cascade_duplicates:
        found |= _duplicates_closure(session, tenant, found)
    ids = sorted(found)
    _refuse_busy(session, ids)
    report.chunks = sum(
        session.scalar(select(func.count()).select_from(Chunk).where(Chunk.document_id.in_(part))) or 0
        for part in batches(ids)
    )
    # the asked ids too: a write that raced an earlier delete may have left chunks of a document without rows
    report.indices, report.index_chunks = _delete_from_indices(session, layout, tenant, sorted(found | set(asked)))
    report.orphans = _orphan_duplicates(session, tenant, found)
    _delete_rows(session, tenant, ids)
    report.documents = ids
    return report


def _lock(session: Session, tenant: str, ids: list[str]) -> set[str]:
    """The tenant's documents among `ids`, their rows locked until the caller's commit."""
    found: set[str] = set()
    sqlite = session.get_bind().dialect.name == "sqlite"
    for part in batches(ids):
        where = (Document.tenant == tenant, Document.id.in_(part))
        if sqlite:
            # SQLite has no row locks and begins a transaction at the first write: this UPDATE sets nothing
            # (updated_at to itself too) and takes the database's write lock now
            session.execute(
                update(Document).where(*where).values(status=Document.status, updated_at=Document.updated_at),
                execution_options=_UNSYNCED,
            )
        # PostgreSQL: row locks in id order, the order an ingest batch takes them in (no deadlock between the two)
        found.update(session.scalars(select(Document.id).where(*where).order_by(Document.id).with_for_update()))
    return found


def _duplicates_of(session: Session, tenant: str, ids: set[str]) -> set[str]:
    found: set[str] = set()
    for part in batches(sorted(ids)):
        found.update(
            session.scalars(select(Document.id).where(Document.tenant == tenant, Document.duplicate_of.in_(part)))
        )
    return found - ids


def _duplicates_closure(session: Session, tenant: str, ids: set[str]) -> set[str]:
    """Duplicates of `ids`, and duplicates of those (an original edited into a duplicate keeps its own)."""
    every, frontier = set(ids), set(ids)
    while frontier:
        frontier = _duplicates_of(session, tenant, frontier) - every
        every |= _lock(session, tenant, sorted(frontier))
    return every - ids


def _refuse_busy(session: Session, ids: list[str]) -> None:
    busy: dict[str, str] = {}
    for part in batches(ids):
        rows = session.execute(
            select(JobDocument.document_id, JobDocument.job_id)
            .join(Job, Job.id == JobDocument.job_id)
            .where(
                JobDocument.document_id.in_(part),
                JobDocument.outcome == Outcome.PENDING,
                Job.state.in_((JobState.QUEUED, JobState.RUNNING)),
            )
        )
        busy.update({doc_id: job_id for doc_id, job_id in rows})
    if busy:
        jobs = ", ".join(sorted(set(busy.values())))
        raise DocumentsBusy(
            f"{len(busy)} of the documents are still being indexed by job(s) {jobs}: delete them once those jobs "
            "end (or cancel them with `docpipe cancel JOB`)"
        )


def physical_indices(session: Session, layout: IndexLayout) -> list[str]:
    """Every index of the prefix that may hold chunks: those Elasticsearch lists, and those SQL says hold some."""
    names = set(layout.versions())
    names.update(
        session.scalars(
            select(IndexVersion.name).where(
                IndexVersion.name.startswith(f"{layout.prefix}-v", autoescape=True), IndexVersion.state.in_(_HOLDING)
            )
        )
    )
    return sorted(names, key=lambda name: (layout.version_of(name) or 0, name))


def _delete_from_indices(session: Session, layout: IndexLayout, tenant: str, ids: list[str]) -> tuple[list[str], int]:
    es, cleaned, deleted = layout.es, [], 0
    for index in physical_indices(session, layout):
        try:
            # delete_by_query sees refreshed chunks only
            with guard(f"refresh {index}"):
                es.indices.refresh(index=index)
            for part in batches(ids):
                query = {"bool": {"filter": [{"term": {"tenant": tenant}}, {"terms": {"doc_id": part}}]}}
                with guard(f"delete documents from {index}"):
                    resp = es.delete_by_query(index=index, query=query, refresh=True, conflicts="proceed")
                if resp.get("failures"):
                    raise BulkIndexError(f"deleting documents from {index} partly failed", list(resp["failures"]))
                deleted += int(resp.get("deleted", 0))
        except NotFoundError:
            continue  # dropped meanwhile (a discarded build, the cleanup after a swap): nothing left to delete
        cleaned.append(index)
    return cleaned, deleted


def _orphan_duplicates(session: Session, tenant: str, deleted: set[str]) -> list[str]:
    orphans = []
    for part in batches(sorted(deleted)):
        for doc in session.scalars(
            select(Document).where(Document.tenant == tenant, Document.duplicate_of.in_(part)).order_by(Document.id)
        ):
            if doc.id in deleted:
                continue
            # pending, not duplicate: the ingest's unchanged-check would skip a duplicate of the same text
            doc.status, doc.duplicate_of, doc.duplicate_kind, doc.similarity = DocumentStatus.PENDING, None, None, None
            doc.cluster_id, doc.indexed_hash, doc.chunk_count = doc.id, None, 0
            orphans.append(doc.id)
    session.flush()
    return orphans


def _delete_rows(session: Session, tenant: str, ids: list[str]) -> None:
    for part in batches(ids):
        for model, column in _DEPENDENTS:
            session.execute(delete(model).where(column.in_(part)), execution_options=_UNSYNCED)
        session.execute(
            delete(Document).where(Document.tenant == tenant, Document.id.in_(part)), execution_options=_UNSYNCED
        )
    gone = set(ids)
    for obj in list(session.identity_map.values()):  # loaded rows that no longer exist must not be flushed
        if isinstance(obj, (Document, JobDocument)) and _doc_id(obj) in gone:
            session.expunge(obj)


def _doc_id(obj: Document | JobDocument) -> str:
    return obj.id if isinstance(obj, Document) else obj.document_id
