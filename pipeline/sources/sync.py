"""The SQL and Elasticsearch side of a folder sync: delete deleted files' documents, plan the
ingest job for new and changed files. The caller passes the session and the index layout and commits.

Documents go through docpipe's one delete path (pipeline/documents/delete.py): Elasticsearch is written
before SQL commits, so if the commit then fails, the next sync still sees the file as known and deletes
again (a no-op), whereas the other order could leave chunks that SQL says are gone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pipeline.documents.delete import DeleteReport, DocumentsBusy, delete_documents
from pipeline.formats.files import holds_many, name_problem, shown_name, source_of
from pipeline.index.aliases import IndexLayout
from pipeline.sources.errors import SourceError
from pipeline.sources.folder import FileState, KnownFile, plan_sync
from pipeline.store import repo
from pipeline.store.models import DeadLetter, Document, Job, JobDocument, JobFile, JobState
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
    gone_items: list[str] = field(default_factory=list)  # documents whose record or member left a changed file
    bad_names: list[str] = field(default_factory=list)  # files skipped: names not UTF-8 or too long (shown_name)

    @property
    def message(self) -> str:
        extra = f", {len(self.promoted)} orphaned duplicate(s) re-read" if self.promoted else ""
        if self.gone_items:
            extra += f", {len(self.gone_items)} document(s) of items gone from changed files removed"
        if self.bad_names:
            shown = ", ".join(self.bad_names[:3]) + (", ..." if len(self.bad_names) > 3 else "")
            extra += f", {len(self.bad_names)} file(s) skipped, their names are not UTF-8 or too long (rename them)"
            extra += f": {shown}"
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


def documents_gone_from_files(session: Session, source: Source, settled: list[str], present: set[str]) -> list[str]:
    """Documents that a records file, an archive or an e-mail among `settled` (files unchanged since their last
    sync) held once and no longer holds: its last read (a job that ended since the previous sync, and read the
    whole file) did not bring them, and no other file still there did either. A file whose last read failed as a
    whole (a dead letter of its own) or refused every item is left alone, so a broken export never empties the
    index; an item its read refused (a dead letter) leaves with the others."""
    since = source.last_success_at
    many = [p for p in settled if holds_many(Path(p).name)]
    reads: list[tuple[str, int]] = []
    for i in range(0, len(many), _IN_BATCH):
        q = (
            select(JobFile.path, JobFile.id, JobFile.job_id)
            .join(SourceFile, (SourceFile.job_id == JobFile.job_id) & (SourceFile.path == JobFile.path))
            .join(Job, Job.id == JobFile.job_id)
            .where(SourceFile.source_id == source.id, JobFile.path.in_(many[i : i + _IN_BATCH]))
            .where(JobFile.status == "done", Job.state.in_((JobState.SUCCEEDED, JobState.PARTIAL)))
        )
        if since is not None:
            q = q.where(Job.finished_at > since)
        for path, file_id, job_id in session.execute(q):
            failed_whole = session.scalar(
                select(DeadLetter.id).where(
                    DeadLetter.job_id == job_id, DeadLetter.path == path, DeadLetter.source == source_of(Path(path))
                )
            )
            if failed_whole is None:
                reads.append((path, file_id))
    gone: set[str] = set()
    held_now: set[str] = set()  # what the latest reads of these files brought (an item may move between them)
    for path, file_id in reads:
        held = set(session.scalars(select(JobDocument.document_id).where(JobDocument.file_id == file_id)))
        held_now |= held
        if held:  # a read that refused every item is a broken file, not an empty one
            gone |= set(_links(session, source.tenant, JobFile.path, [path])) - held
    if not gone:
        return []
    links = _links(session, source.tenant, JobDocument.document_id, sorted(gone))
    read_paths = {path for path, _ in reads}
    kept = {d for d in gone if links.get(d, set()) & (present - read_paths)} | held_now
    left = sorted(gone - kept)
    existing: list[str] = []
    for i in range(0, len(left), _IN_BATCH):  # a replaced export can leave many: IN lists stay bounded
        existing += session.scalars(select(Document.id).where(Document.id.in_(left[i : i + _IN_BATCH])))
    return sorted(existing)


def remove_documents(session: Session, layout: IndexLayout, tenant: str, doc_ids: list[str]) -> DeleteReport:
    """Delete documents (chunks in every index version, SQL rows, dedup state); a document that an open job
    still indexes makes the sync fail, to be retried at the next run. Idempotent."""
    try:
        return delete_documents(session, layout, tenant, doc_ids)
    except DocumentsBusy as exc:
        raise SourceError(f"cannot delete the documents of removed files yet: {exc}") from exc


def sync_folder(
    session: Session, source: Source, current: dict[str, FileState], layout: IndexLayout, now: datetime
) -> FolderSync:
    bad = sorted(p for p in current if name_problem(p))
    current = {p: state for p, state in current.items() if not name_problem(p)}
    known = known_files(session, source.id)
    plan = plan_sync(current, known)
    present = set(current)
    result = FolderSync(job=None, deleted=plan.deleted, unchanged=len(plan.unchanged))
    result.bad_names = [shown_name(p) for p in bad]
    result.new = [p for p in plan.ingest if p not in known]
    result.changed = [p for p in plan.ingest if p in known]
    if plan.deleted:
        gone = documents_of_deleted_files(session, source.tenant, plan.deleted, present)
        report = remove_documents(session, layout, source.tenant, gone)
        result.removed_documents = report.documents
        session.execute(delete(SourceFile).where(SourceFile.source_id == source.id, SourceFile.path.in_(plan.deleted)))
        orphans = report.orphans
    else:
        orphans = []
    gone = documents_gone_from_files(session, source, plan.unchanged, present)
    if gone:
        report = remove_documents(session, layout, source.tenant, gone)
        result.gone_items = report.documents
        orphans += report.orphans
    ingest = list(plan.ingest)
    if orphans:
        ingest += _promote_orphans(session, source.tenant, orphans, result, present, set(ingest))
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
    session: Session, tenant: str, orphans: list[str], result: FolderSync, present: set[str], already: set[str]
) -> list[str]:
    """Duplicates of a deleted document hold the only remaining copy of its text; the delete left them pending:
    read their files again so that dedup makes one of them the canonical, indexed document."""
    links = _links(session, tenant, JobDocument.document_id, orphans)
    files: set[str] = set()
    for doc_id in orphans:
        paths = links.get(doc_id, set()) & present
        if paths:
            result.promoted.append(doc_id)
            files |= paths
    return sorted(files - already)
