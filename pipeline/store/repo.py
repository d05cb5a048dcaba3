"""Repository functions: every job/document/dead-letter read and write the rest of docpipe does.

Counters are recomputed from the item tables, never incremented, so a task that runs twice
leaves the job row exactly as one run would. What each counter means (the README's "What a job does"):
an item is one document or one dead letter of the job's inputs; `total` is counted before reading starts;
`done` counts documents this job wrote to the index, `unchanged` those already in the index with the same
content (written by an earlier job, or by an overlapping one while this one waited), `skipped` duplicates,
`failed` dead letters; done + unchanged + skipped + failed == total when the job ends.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import Row, delete, func, insert, select
from sqlalchemy.orm import Session

from pipeline.store.models import (
    Chunk,
    DeadLetter,
    Document,
    DocumentStatus,
    IndexVersion,
    Job,
    JobDocument,
    JobFile,
    JobState,
    LshBucket,
    Outcome,
    utcnow,
)
from pipeline.types import Rejected, as_utc

log = logging.getLogger(__name__)
# how often a task touching a running job moves its heartbeat (stalled_jobs reads it)
HEARTBEAT_EVERY = timedelta(seconds=1)


def new_id() -> str:
    return uuid.uuid4().hex


# --- jobs -----------------------------------------------------------------------------------


def create_job(
    session: Session, tenant: str, inputs: list[str], kind: str = "ingest", options: dict | None = None
) -> Job:
    job = Job(
        id=new_id(), tenant=tenant, kind=kind, inputs=inputs, options=options or {}, state=JobState.QUEUED, metrics={}
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: str) -> Job | None:
    job = session.get(Job, job_id)
    if job is None and len(job_id) < 32:  # a unique prefix is enough on the CLI
        rows = session.scalars(select(Job).where(Job.id.startswith(job_id)).limit(2)).all()
        job = rows[0] if len(rows) == 1 else None
    return job


def list_jobs(
    session: Session, state: str | None = None, tenant: str | None = None, limit: int = 50, offset: int = 0
) -> list[Job]:
    q = select(Job).order_by(Job.created_at.desc()).limit(limit).offset(offset)
    if state:
        q = q.where(Job.state == state)
    if tenant:
        q = q.where(Job.tenant == tenant)
    return list(session.scalars(q))


def page_jobs(
    session: Session, tenant: str, state: str | None = None, kind: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[Job], int]:
    """A page of the tenant's jobs, newest first, and how many match in all."""
    q = select(Job).where(Job.tenant == tenant)
    if state:
        q = q.where(Job.state == state)
    if kind:
        q = q.where(Job.kind == kind)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(q.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset))
    return list(rows), total


def finished_jobs(session: Session, tenant: str, since: datetime, kinds: Collection[str] | None = None) -> list[Row]:
    """(finished_at, done, unchanged, skipped, failed, state, id) of the tenant's jobs (of `kinds`, else all)
    that ended at or after `since`."""
    query = select(Job.finished_at, Job.done, Job.unchanged, Job.skipped, Job.failed, Job.state, Job.id).where(
        Job.tenant == tenant, Job.finished_at.is_not(None), Job.finished_at >= since
    )
    if kinds is not None:
        query = query.where(Job.kind.in_(kinds))
    return list(session.execute(query))


def mark_running(session: Session, job: Job) -> None:
    if job.state == JobState.QUEUED:
        job.state = JobState.RUNNING
        job.started_at = job.started_at or utcnow()
        log.info("job started", extra={"job_id": job.id, "tenant": job.tenant, "kind": job.kind})
    now = utcnow()
    # the job row is every task's shared write: a task touching it for each file queued its neighbours behind
    # the lock; a second's staleness is nothing to the stall sweep (DOCPIPE_STALL_SECONDS, minutes)
    if job.heartbeat_at is None or now - as_utc(job.heartbeat_at) >= HEARTBEAT_EVERY:
        job.heartbeat_at = now


def heartbeat(session: Session, job: Job) -> None:
    job.heartbeat_at = utcnow()


def note_retry(session: Session, job: Job, seconds: float, reason: str) -> None:
    """A task of the job waits `seconds` to try again after `reason` (a service away or refusing): counted in the
    job's metrics, so that its report tells this wait from time lost elsewhere, and a heartbeat (it waits, it has
    not stalled)."""
    metrics = dict(job.metrics or {})
    seen = metrics.get("retries") or {}
    metrics["retries"] = {
        "count": int(seen.get("count", 0)) + 1,
        "seconds": float(seen.get("seconds", 0.0)) + seconds,
        "last": reason[:300],
    }
    job.metrics = metrics
    heartbeat(session, job)


def refresh_counters(session: Session, job: Job) -> None:
    session.flush()
    by_outcome = dict(
        session.execute(
            select(JobDocument.outcome, func.count()).where(JobDocument.job_id == job.id).group_by(JobDocument.outcome)
        ).all()
    )
    failed = session.scalar(select(func.count()).select_from(DeadLetter).where(DeadLetter.job_id == job.id)) or 0
    # the items of files not read yet, as counted before reading began (pipeline/jobs/counting.py), less those
    # of a file read in parts that are stored already
    unread = (
        session.scalar(
            select(func.coalesce(func.sum(JobFile.records - JobFile.read_items), 0)).where(
                JobFile.job_id == job.id, JobFile.status == "pending"
            )
        )
        or 0
    )
    job.done = by_outcome.get(Outcome.INDEXED, 0)
    job.unchanged = by_outcome.get(Outcome.UNCHANGED, 0)
    job.skipped = by_outcome.get(Outcome.DUPLICATE, 0)
    job.failed = failed
    # an index failure has both a job_documents row and a dead letter: count the item once. A file read moves its
    # counted items from `unread` to the outcomes: the total stays as counted unless the file held other than counted
    job.total = sum(n for o, n in by_outcome.items() if o != Outcome.FAILED) + failed + unread
    job.chunks = (
        session.scalar(
            select(func.coalesce(func.sum(Document.chunk_count), 0))
            .join(JobDocument, JobDocument.document_id == Document.id)
            .where(JobDocument.job_id == job.id, JobDocument.outcome == Outcome.INDEXED)
        )
        or 0
    )


def pending_work(session: Session, job_id: str) -> int:
    files = (
        session.scalar(
            select(func.count()).select_from(JobFile).where(JobFile.job_id == job_id, JobFile.status == "pending")
        )
        or 0
    )
    docs = (
        session.scalar(
            select(func.count())
            .select_from(JobDocument)
            .where(JobDocument.job_id == job_id, JobDocument.outcome == Outcome.PENDING)
        )
        or 0
    )
    return files + docs


def finish_if_done(session: Session, job: Job) -> bool:
    """Close the job when no file or document is left; the final state follows from the counters."""
    refresh_counters(session, job)
    if job.state in JobState.FINAL or pending_work(session, job.id):
        return job.state in JobState.FINAL
    succeeded = job.done + job.unchanged + job.skipped
    if job.failed == 0:
        job.state = JobState.SUCCEEDED
    elif succeeded == 0:
        job.state = JobState.FAILED
        job.error = job.error or f"all {job.failed} item(s) failed; see the dead letters"
    else:
        job.state = JobState.PARTIAL
    job.finished_at = utcnow()
    job.heartbeat_at = job.finished_at
    log.info("job finished", extra=_job_fields(job))
    return True


def _job_fields(job: Job) -> dict:
    return {
        "job_id": job.id,
        "tenant": job.tenant,
        "kind": job.kind,
        "state": job.state,
        **job.counters(),
    }


def fail_job(session: Session, job_id: str, error: str) -> None:
    job = session.get(Job, job_id)
    if job is None or job.state in JobState.FINAL:
        return
    refresh_counters(session, job)
    job.state = JobState.FAILED
    job.error = error
    job.finished_at = utcnow()
    log.warning("job failed", extra={**_job_fields(job), "error": error})


def cancel_job(session: Session, job: Job) -> bool:
    if job.state in JobState.FINAL:
        return False
    refresh_counters(session, job)
    job.state = JobState.CANCELLED
    job.finished_at = utcnow()
    job.error = "cancelled by request"
    log.info("job cancelled", extra=_job_fields(job))
    return True


# Jobs that read files and index their documents (start_job -> read_files -> index_files); ML and
# reindex jobs resume through their own tasks.
FILE_JOB_KINDS = ("ingest", "upload", "folder", "feed", "replay")


def stalled_jobs(session: Session, older_than: timedelta, kinds: tuple[str, ...] = FILE_JOB_KINDS) -> list[Job]:
    """Open jobs of `kinds` (file jobs by default) that no task has touched for `older_than`: the message of their
    next task may be lost."""
    cutoff: datetime = utcnow() - older_than
    return list(
        session.scalars(
            select(Job)
            .where(
                Job.state.in_((JobState.QUEUED, JobState.RUNNING)),
                Job.kind.in_(kinds),
                func.coalesce(Job.heartbeat_at, Job.created_at) < cutoff,
            )
            .order_by(Job.created_at)
        )
    )


def open_work(session: Session, job_id: str) -> tuple[list[int], list[int]]:
    """Ids of the job's files still to read, and of read files whose documents are still to index."""
    unread = session.scalars(
        select(JobFile.id).where(JobFile.job_id == job_id, JobFile.status == "pending").order_by(JobFile.id)
    )
    unindexed = session.scalars(
        select(JobDocument.file_id)
        .where(JobDocument.job_id == job_id, JobDocument.outcome == Outcome.PENDING, JobDocument.file_id.is_not(None))
        .distinct()
        .order_by(JobDocument.file_id)
    )
    return list(unread), [file_id for file_id in unindexed if file_id is not None]  # None excluded by the query


# --- files, job documents, dead letters ------------------------------------------------------


def add_job_files(session: Session, job: Job, paths: list[str]) -> None:
    known = set(session.scalars(select(JobFile.path).where(JobFile.job_id == job.id)))
    session.add_all(JobFile(job_id=job.id, path=p) for p in paths if p not in known)
    session.flush()


def pending_files(session: Session, job_id: str, file_ids: list[int] | None = None) -> list[JobFile]:
    # SKIP LOCKED (PostgreSQL; ignored on SQLite): a redelivered task running beside the original
    # leaves the file the original is reading to it instead of reading it twice at once.
    q = (
        select(JobFile)
        .where(JobFile.job_id == job_id, JobFile.status == "pending")
        .order_by(JobFile.id)
        .with_for_update(skip_locked=True)
    )
    if file_ids is not None:
        q = q.where(JobFile.id.in_(file_ids))
    return list(session.scalars(q))


def add_outcome(session: Session, job_id: str, doc_id: str, outcome: str, file_id: int | None) -> None:
    """The outcome of a document this job has none for yet (reading places each identity once per job)."""
    session.add(JobDocument(job_id=job_id, document_id=doc_id, outcome=outcome, file_id=file_id))


def set_outcome(session: Session, job_id: str, doc_id: str, outcome: str, file_id: int | None = None) -> None:
    row = session.get(JobDocument, (job_id, doc_id))
    if row is None:
        add_outcome(session, job_id, doc_id, outcome, file_id)
    else:
        row.outcome = outcome
        if file_id is not None:
            row.file_id = file_id


def _pending_batch(
    session: Session,
    job_id: str,
    file_ids: list[int],
    limit: int | None,
    max_chunks: int | None,
    max_chars: int | None,
) -> list[Document]:
    pending = (JobDocument.job_id == job_id, JobDocument.file_id.in_(file_ids), JobDocument.outcome == Outcome.PENDING)
    taken: list[str] | None = None
    if max_chunks is not None or max_chars is not None:
        sizes = session.execute(
            select(Document.id, Document.chunk_count, func.length(Document.text))
            .join(JobDocument, JobDocument.document_id == Document.id)
            .where(*pending)
            .order_by(Document.id)
            .limit(limit)
        ).tuples()
        taken = within_budget(list(sizes), max_chunks, max_chars)
        if not taken:
            return []
    q = (
        select(Document)
        .join(JobDocument, JobDocument.document_id == Document.id)
        .where(*pending)
        .order_by(Document.id)
        .limit(limit)
        .with_for_update(of=JobDocument, skip_locked=True)
    )
    if taken is not None:
        q = q.where(Document.id.in_(taken))
    return list(session.scalars(q))


def pending_documents(
    session: Session,
    job_id: str,
    file_ids: list[int],
    limit: int | None = None,
    max_chunks: int | None = None,
    max_chars: int | None = None,
) -> list[Document]:
    """The job's documents of `file_ids` still to index, in id order: at most `limit`, and once the first is taken
    no more than `max_chunks` chunks and `max_chars` characters of text together, so that a batch's memory follows
    its largest document, not the sum of its documents.

    A document that an overlapping job indexed with the same content since this job read it is `unchanged` for
    this one, not written again: each document counts as indexed by one job only."""
    while True:
        docs = _pending_batch(session, job_id, file_ids, limit, max_chunks, max_chars)
        fresh = _not_indexed_meanwhile(session, job_id, docs)
        if fresh or not docs:
            return fresh


def _not_indexed_meanwhile(session: Session, job_id: str, docs: list[Document]) -> list[Document]:
    if not docs:
        return []
    # Wait for an overlapping job that indexes one of them now (PostgreSQL row locks, taken in id order so that
    # two jobs cannot deadlock; SQLite serialises writers anyway), then read the rows as it left them.
    locked = session.scalars(
        select(Document)
        .where(Document.id.in_([d.id for d in docs]))
        .order_by(Document.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    fresh = []
    for doc in locked:
        if doc.status == DocumentStatus.INDEXED and doc.indexed_hash and doc.indexed_hash == doc.content_hash:
            set_outcome(session, job_id, doc.id, Outcome.UNCHANGED)
        else:
            fresh.append(doc)
    return fresh


def within_budget(sizes: list[tuple[str, int, int | None]], max_chunks: int | None, max_chars: int | None) -> list[str]:
    """The ids of the longest prefix of (id, chunks, characters) within both budgets; the first id always."""
    taken: list[str] = []
    chunks = chars = 0
    for doc_id, n_chunks, n_chars in sizes:
        chunks, chars = chunks + (n_chunks or 0), chars + (n_chars or 0)
        over = (max_chunks is not None and chunks > max_chunks) or (max_chars is not None and chars > max_chars)
        if taken and over:
            break
        taken.append(doc_id)
    return taken


def add_dead_letter(session: Session, job: Job, item: Rejected, path: str | None) -> None:
    """Idempotent per (job, source, stage): a task that runs twice records one dead letter."""
    existing = session.scalar(
        select(DeadLetter).where(
            DeadLetter.job_id == job.id, DeadLetter.source == item.source, DeadLetter.stage == item.stage
        )
    )
    if existing is None:
        log.warning(
            "dead letter",
            extra={
                "job_id": job.id,
                "tenant": job.tenant,
                "stage": item.stage,
                "reason": item.reason,
                "source": item.source,
                "detail": (item.detail or "")[:300],
            },
        )
        session.add(
            DeadLetter(
                job_id=job.id,
                tenant=job.tenant,
                source=item.source,
                path=path,
                stage=item.stage,
                reason=item.reason,
                detail=item.detail,
            )
        )
    else:
        existing.reason, existing.detail = item.reason, item.detail


def dead_letters(
    session: Session, job_id: str | None = None, tenant: str | None = None, unreplayed: bool = False
) -> list[DeadLetter]:
    q = select(DeadLetter).order_by(DeadLetter.id)
    if job_id:
        q = q.where(DeadLetter.job_id == job_id)
    if tenant:
        q = q.where(DeadLetter.tenant == tenant)
    if unreplayed:
        q = q.where(DeadLetter.replayed_at.is_(None))
    return list(session.scalars(q))


def mark_replayed(session: Session, letters: list[DeadLetter], replay_job: Job) -> None:
    now = utcnow()
    for letter in letters:
        letter.replayed_at, letter.replay_job_id = now, replay_job.id


def replayable_letters(session: Session, job_id: str) -> list[DeadLetter]:
    """A job's dead letters not replayed yet that name an input file to read again."""
    return [d for d in dead_letters(session, job_id, unreplayed=True) if d.path]


def create_replay_job(session: Session, job: Job) -> Job | None:
    """A new job over the files behind `job`'s replayable dead letters, which it marks replayed;
    None when there is nothing to replay. The caller sends the job's first task after commit."""
    letters = replayable_letters(session, job.id)
    if not letters:
        return None
    replay = create_job(session, job.tenant, sorted({d.path for d in letters if d.path}), kind="replay")
    mark_replayed(session, letters, replay)
    return replay


# --- documents and the persistent LSH ----------------------------------------------------------


def get_document(session: Session, tenant: str, doc_id: str) -> Document | None:
    doc = session.get(Document, doc_id)
    return doc if doc is not None and doc.tenant == tenant else None


def list_documents(
    session: Session,
    tenant: str,
    status: str | None = None,
    sources: list[str] | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Document], int]:
    """A page of the tenant's documents, most recently changed first, and how many match in all."""
    q = select(Document).where(Document.tenant == tenant)
    if status:
        q = q.where(Document.status == status)
    if sources:
        q = q.where(Document.source.in_(sources))
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = session.scalars(q.order_by(Document.updated_at.desc(), Document.id).limit(limit).offset(offset))
    return list(rows), total


def chunk_total(session: Session, tenant: str | None = None) -> int:
    q = select(func.coalesce(func.sum(Document.chunk_count), 0)).where(Document.status == DocumentStatus.INDEXED)
    if tenant:
        q = q.where(Document.tenant == tenant)
    return session.scalar(q) or 0


# --- chunks and LSH buckets --------------------------------------------------------------------
# These rows are only ever written with bulk statements and read as plain rows, never as ORM objects.
# So their deletes skip the search of the session for matching objects, which would grow with every
# document a long-lived session has seen (it made reading a corpus quadratic).
_UNSYNCED = {"synchronize_session": False}


def chunk_rows(session: Session, doc_ids: list[str]) -> dict[str, list[Row]]:
    """Each document's chunk rows (the Chunk columns, as plain rows) in ordinal order."""
    found: dict[str, list[Row]] = {d: [] for d in doc_ids}
    for row in session.execute(
        select(Chunk.id, Chunk.document_id, Chunk.ordinal, Chunk.char_start, Chunk.char_end, Chunk.token_count)
        .where(Chunk.document_id.in_(doc_ids))
        .order_by(Chunk.document_id, Chunk.ordinal)
    ):
        found[row.document_id].append(row)
    return found


def drop_chunks(session: Session, doc_ids: list[str]) -> None:
    session.execute(delete(Chunk).where(Chunk.document_id.in_(doc_ids)), execution_options=_UNSYNCED)


def add_chunks(session: Session, rows: list[dict]) -> None:
    """Insert chunk rows (the Chunk columns as dicts); their documents must be flushed already."""
    if rows:
        session.execute(insert(Chunk), rows)


def drop_lsh(session: Session, doc_id: str) -> None:
    session.execute(delete(LshBucket).where(LshBucket.document_id == doc_id), execution_options=_UNSYNCED)


def replace_lsh(session: Session, tenant: str, doc_id: str, bands: list[tuple[int, str]]) -> None:
    drop_lsh(session, doc_id)
    if bands:
        session.execute(
            insert(LshBucket), [{"tenant": tenant, "band": b, "bucket": key, "document_id": doc_id} for b, key in bands]
        )


# --- index versions --------------------------------------------------------------------------


def index_versions(session: Session) -> list[IndexVersion]:
    """Every physical index version, newest first."""
    return list(session.scalars(select(IndexVersion).order_by(IndexVersion.version.desc())))


def record_live_index(
    session: Session, name: str, version: int, config_hash: str, model: str, dims: int, reason: str = "first index"
) -> IndexVersion:
    """Idempotently record that `name` is live (the first index; reindexing swaps later ones)."""
    row = session.scalar(select(IndexVersion).where(IndexVersion.name == name))
    if row is None:
        row = IndexVersion(
            name=name,
            version=version,
            config_hash=config_hash,
            model=model,
            dims=dims,
            state="live",
            reason=reason,
            activated_at=utcnow(),
        )
        session.add(row)
    return row
