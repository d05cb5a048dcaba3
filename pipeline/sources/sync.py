"""The SQL and Elasticsearch side of a folder sync: forget deleted files' documents, plan the
ingest job for new and changed files. The caller passes the session and the client and commits.

Elasticsearch is written before SQL commits: if the commit then fails, the next sync still sees
the file as known and deletes again (a no-op), whereas the other order could leave chunks that
SQL says are gone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pipeline.index import delete_stale_chunks
from pipeline.sources.folder import FileState, KnownFile, plan_sync
from pipeline.store import repo
from pipeline.store.models import Document, DocumentStatus, Job, JobDocument, JobFile, JobState
from pipeline.store.models_sources import Source, SourceFile
from pipeline.types import document_id

_IN_BATCH = 500


@dataclass
class FolderSync:
    job: Job | None
    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed_documents: list[str] = field(default_factory=list)
    promoted: list[str] = field(default_factory=list)  # duplicates re-read because their original went

    @property
    def message(self) -> str:
        extra = f", {len(self.promoted)} orphaned duplicate(s) re-read" if self.promoted else ""
        return (
            f"{len(self.new)} new, {len(self.changed)} changed, {len(self.deleted)} deleted "
            f"({len(self.removed_documents)} documents removed), {self.unchanged} unchanged file(s){extra}"
        )


def known_files(session: Session, source_id: str) -> dict[str, KnownFile]:
    rows = session.execute(
        select(SourceFile.path, SourceFile.file_hash, Job.state)
        .outerjoin(Job, Job.id == SourceFile.job_id)
        .where(SourceFile.source_id == source_id)
    )
    # a job deleted since is taken as settled: re-reading a whole folder for that would surprise
    return {p: KnownFile(h, state not in (JobState.FAILED, JobState.CANCELLED)) for p, h, state in rows}


def _links(session: Session, tenant: str, column, values: list[str]) -> dict[str, set[str]]:
    """document id → paths of the files it was read from (by any job of the tenant)."""
    found: dict[str, set[str]] = defaultdict(set)
    for i in range(0, len(values), _IN_BATCH):
        rows = session.execute(
            select(JobDocument.document_id, JobFile.path)
            .join(JobFile, JobFile.id == JobDocument.file_id)
            .join(Job, Job.id == JobFile.job_id)
            .where(Job.tenant == tenant, column.in_(values[i : i + _IN_BATCH]))
        )
        for doc_id, path in rows:
            found[doc_id].add(path)
    return found


def documents_of_deleted_files(session: Session, tenant: str, deleted: list[str], present: set[str]) -> list[str]:
    """Documents read from deleted files and from no file that is still there."""
    candidates = set(_links(session, tenant, JobFile.path, deleted))
    candidates |= {document_id(tenant, p) for p in deleted}  # one-document files, whatever the links say
    linked = _links(session, tenant, JobDocument.document_id, sorted(candidates))
    return sorted(d for d in candidates if not (linked.get(d, set()) & present))


def remove_documents(session: Session, es, aliases: list[str], tenant: str, doc_ids: list[str]) -> list[str]:
    """Mark documents deleted and take their chunks out of every given alias. Idempotent."""
    removed = []
    for i in range(0, len(doc_ids), _IN_BATCH):
        docs = session.scalars(
            select(Document).where(
                Document.tenant == tenant,
                Document.status != DocumentStatus.DELETED,
                Document.id.in_(doc_ids[i : i + _IN_BATCH]),
            )
        )
        for doc in docs:
            if doc.indexed_hash or doc.status == DocumentStatus.INDEXED:
                for alias in aliases:
                    delete_stale_chunks(es, alias, tenant, doc.id, None)
            repo.drop_chunks(session, [doc.id])
            repo.drop_lsh(session, doc.id)
            # indexed_hash None and status "deleted": the ingest's unchanged-check then reads a
            # re-added file again, and repo.chunk_total no longer counts it
            doc.status, doc.indexed_hash, doc.chunk_count = DocumentStatus.DELETED, None, 0
            removed.append(doc.id)
    return removed


def sync_folder(
    session: Session, source: Source, current: dict[str, FileState], es, aliases: list[str], now: datetime
) -> FolderSync:
    known = known_files(session, source.id)
    plan = plan_sync(current, known)
    present = set(current)
    result = FolderSync(job=None, deleted=plan.deleted, unchanged=len(plan.unchanged))
    result.new = [p for p in plan.ingest if p not in known]
    result.changed = [p for p in plan.ingest if p in known]
    if plan.deleted:
        gone = documents_of_deleted_files(session, source.tenant, plan.deleted, present)
        result.removed_documents = remove_documents(session, es, aliases, source.tenant, gone)
        session.execute(delete(SourceFile).where(SourceFile.source_id == source.id, SourceFile.path.in_(plan.deleted)))
    ingest = list(plan.ingest)
    if result.removed_documents:
        ingest += _promote_orphans(session, source.tenant, result, present, set(ingest))
    if ingest:
        result.job = repo.create_job(
            session, source.tenant, ingest, kind="folder", options={"source_id": source.id, "folder": source.location}
        )
        for path in ingest:
            row = session.get(SourceFile, (source.id, path)) or SourceFile(source_id=source.id, path=path)
            row.file_hash, row.size = current[path].file_hash, current[path].size
            row.job_id, row.synced_at = result.job.id, now
            session.add(row)
    return result


def _promote_orphans(
    session: Session, tenant: str, result: FolderSync, present: set[str], already: set[str]
) -> list[str]:
    """Duplicates of a deleted document hold the only remaining copy of its text: read their
    files again so that dedup makes one of them the canonical, indexed document."""
    orphans = list(
        session.scalars(
            select(Document).where(
                Document.tenant == tenant,
                Document.status == DocumentStatus.DUPLICATE,
                Document.duplicate_of.in_(result.removed_documents),
            )
        )
    )
    links = _links(session, tenant, JobDocument.document_id, [d.id for d in orphans])
    files: set[str] = set()
    for doc in orphans:
        paths = links.get(doc.id, set()) & present
        if paths:
            doc.status = DocumentStatus.PENDING  # not a duplicate: the ingest's unchanged-check would skip it
            result.promoted.append(doc.id)
            files |= paths
    return sorted(files - already)
