"""Which documents a deletion means (ids, a source, a job), and the delete job that deletes them in steps.

A delete job keeps its selection in its options and deletes in steps of STEP_DOCS documents, one transaction
each (pipeline/documents/delete.py), so a crashed or redelivered step simply selects what is left. Its counters:
`total` the documents it deletes in all (those deleted so far plus those still matching), `done` the documents
deleted, `chunks` their chunks; the metrics say the same by name (deleted_documents, deleted_chunks) with the
chunks taken out of the indices and the duplicates left pending (orphaned_duplicates).
"""

from __future__ import annotations

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from pipeline.documents.delete import DeleteReport, delete_documents
from pipeline.errors import PermanentError
from pipeline.index.aliases import IndexLayout
from pipeline.store import repo
from pipeline.store.models import Document, Job, JobDocument, JobState
from pipeline.types import utcnow

DELETE_KIND = "delete"
STEP_DOCS = 500
PREFIX = "*"  # a source ending in it is a prefix


class InvalidSelection(PermanentError):
    """A deletion that names no documents, or more than one kind of selection."""


def selection(ids: list[str] | None = None, sources: list[str] | None = None, job: str | None = None) -> dict:
    """The options form of a selection: exactly one of document ids, sources (exact, or prefixes ending in
    `*`; any of them matches) or the id of the job that brought the documents."""
    given = {k: v for k, v in (("ids", ids), ("sources", sources), ("job", job)) if v}
    if len(given) != 1:
        raise InvalidSelection("name exactly one of: document ids, a source, a job")
    for source in sources or ():
        if not source.rstrip(PREFIX).strip():
            raise InvalidSelection(f"source {source!r} names no source: give one, or a prefix ending in '*'")
    return {k: list(dict.fromkeys(v)) if isinstance(v, list) else v for k, v in given.items()}


def matching(tenant: str, chosen: dict) -> Select:
    """The ids of the tenant's documents a selection means, in id order."""
    q = select(Document.id).where(Document.tenant == tenant).order_by(Document.id)
    if "ids" in chosen:
        return q.where(Document.id.in_(chosen["ids"]))
    if "sources" in chosen:
        return q.where(or_(*(_source_is(s) for s in chosen["sources"])))
    if "job" in chosen:
        linked = select(JobDocument.document_id).where(JobDocument.job_id == chosen["job"])
        return q.where(or_(Document.id.in_(linked), Document.last_job_id == chosen["job"]))
    raise InvalidSelection(f"unknown selection {sorted(chosen)}")


def _source_is(source: str):
    """The source itself and what it holds: an archive's members, an e-mail's attachments, a file's records
    without ids (`<source>#...`); a source ending in `*` is a prefix."""
    if source.endswith(PREFIX):
        return Document.source.startswith(source.rstrip(PREFIX), autoescape=True)
    return or_(Document.source == source, Document.source.startswith(f"{source}#", autoescape=True))


def select_documents(session: Session, tenant: str, chosen: dict, limit: int | None = None) -> list[str]:
    if "ids" in chosen:  # an IN list per batch; the list may be long
        found: list[str] = []
        for i in range(0, len(chosen["ids"]), STEP_DOCS):
            found += session.scalars(matching(tenant, {"ids": chosen["ids"][i : i + STEP_DOCS]}))
        return sorted(found)[:limit] if limit is not None else sorted(found)
    return list(session.scalars(matching(tenant, chosen).limit(limit)))


def count_documents(session: Session, tenant: str, chosen: dict) -> int:
    if "ids" in chosen:
        return len(select_documents(session, tenant, chosen))
    return session.scalar(select(func.count()).select_from(matching(tenant, chosen).subquery())) or 0


def delete_by_source(
    session: Session, layout: IndexLayout, tenant: str, source: str, *, cascade_duplicates: bool = False
) -> DeleteReport:
    """Delete the tenant's documents of `source` (exactly, or a prefix ending in `*`) in one transaction."""
    ids = select_documents(session, tenant, selection(sources=[source]))
    return delete_documents(session, layout, tenant, ids, cascade_duplicates=cascade_duplicates)


def delete_by_job(
    session: Session, layout: IndexLayout, tenant: str, job_id: str, *, cascade_duplicates: bool = False
) -> DeleteReport:
    """Delete the tenant's documents that job `job_id` read (job_documents) or last wrote, in one transaction."""
    ids = select_documents(session, tenant, selection(job=job_id))
    return delete_documents(session, layout, tenant, ids, cascade_duplicates=cascade_duplicates)


def create_delete_job(
    session: Session, tenant: str, chosen: dict, *, cascade_duplicates: bool = False, reason: str | None = None
) -> Job:
    """A queued delete job over `chosen` (see `selection`); the caller sends its task after the commit."""
    options = {"select": chosen, "cascade_duplicates": cascade_duplicates}
    if reason:
        options["reason"] = reason
    job = repo.create_job(session, tenant, [], kind=DELETE_KIND, options=options)
    job.total = count_documents(session, tenant, chosen)
    job.metrics = DeleteReport().metrics()
    return job


def delete_step(session: Session, job: Job, layout: IndexLayout, limit: int = STEP_DOCS) -> bool:
    """Delete the next documents of a delete job and count them on it; True while more are left.

    The caller commits: the documents' rows go and the job's counters move in the same transaction."""
    chosen, cascade = job.options["select"], bool(job.options.get("cascade_duplicates"))
    ids = select_documents(session, job.tenant, chosen, limit)
    if ids:
        report = delete_documents(session, layout, job.tenant, ids, cascade_duplicates=cascade)
        if not report.documents:  # never expected: selection and deletion filter alike
            raise PermanentError(f"delete job {job.id} selected {len(ids)} documents it could not delete")
        _count(job, report)
    left = count_documents(session, job.tenant, chosen)
    job.total = job.done + left
    job.heartbeat_at = utcnow()
    if left:
        return True
    job.state, job.finished_at = JobState.SUCCEEDED, utcnow()
    return False


def _count(job: Job, report: DeleteReport) -> None:
    metrics = dict(job.metrics or {})
    for name, value in report.metrics().items():
        metrics[name] = metrics.get(name, 0) + value
    indices = sorted(set(metrics.get("indices", [])) | set(report.indices))
    job.metrics = {**metrics, "indices": indices}
    job.done, job.chunks = metrics["deleted_documents"], metrics["deleted_chunks"]


def fail_delete_job(session: Session, job_id: str, error: str) -> None:
    """Mark a delete job failed, keeping its counters: what it deleted before failing stays deleted."""
    job = session.get(Job, job_id)
    if job is None or job.state in JobState.FINAL:
        return
    job.state, job.error, job.finished_at = JobState.FAILED, error, utcnow()


def summary(job: Job) -> str:
    """One line on what a delete job did."""
    m = job.metrics or {}
    line = f"deleted {m.get('deleted_documents', 0)} document(s), {m.get('deleted_chunks', 0)} chunk(s)"
    if m.get("indices"):
        line += f" (from {', '.join(m['indices'])})"
    if m.get("orphaned_duplicates"):
        line += (
            f"; {m['orphaned_duplicates']} duplicate(s) of them are no longer duplicates and wait, pending, "
            "for the next ingest of their source"
        )
    return line
