"""Which task process holds which file of a job, and how often a file was taken (poison control).

A read task claims its files before reading them (owner = its process, host:pid) and counts a delivery, in a
transaction of its own, as it begins each one; an index task claims the read files whose documents it embeds
and counts a delivery for each that still has documents to index. A claim held by a live process is left
alone, so a redelivered copy of a task never works beside the original; one held by a dead process is taken
over (pipeline/jobs/reclaim.py resends such work). A file taken `max_deliveries` times without finishing
killed its worker each time: it becomes a `worker_lost` dead letter and the job goes on.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pipeline.errors import Reason
from pipeline.store import repo
from pipeline.store.models import Document, Job, JobDocument, JobFile, Outcome
from pipeline.types import Rejected, utcnow

READ_PENDING = "pending"
FILE_FAILED = "failed"  # a file given up (worker_lost, timeout): its dead letter says why


class Step(enum.StrEnum):
    READ = "read"
    INDEX = "index"


def claim(
    session: Session,
    job_id: str,
    file_ids: list[int],
    me: str,
    step: Step,
    dead: Callable[[set[str]], set[str]],
    now: datetime | None = None,
) -> list[int]:
    """Take the files of `file_ids` still open for `step` that no live process holds; their ids, in order.
    `dead(owners)` says which of the current owners are dead."""
    rows = list(
        session.scalars(
            select(JobFile)
            .where(JobFile.job_id == job_id, JobFile.id.in_(file_ids))
            .order_by(JobFile.id)
            .with_for_update()
        )
    )
    rows = [r for r in rows if (r.status == READ_PENDING) == (step == Step.READ)]
    held = {r.owner for r in rows if r.owner and r.owner != me}
    gone = dead(held) if held else set()
    now = now or utcnow()
    taken = []
    for row in rows:
        if row.owner and row.owner != me and row.owner not in gone:
            continue
        row.owner, row.claimed_at = me, now
        taken.append(row.id)
    return taken


def release(session: Session, file_ids: list[int], me: str) -> None:
    """Drop `me`'s claim on the files (their step is done, or handed to another task)."""
    if file_ids:
        session.execute(
            update(JobFile)
            .where(JobFile.id.in_(file_ids), JobFile.owner == me)
            .values(owner=None, claimed_at=None)
            .execution_options(synchronize_session=False)
        )


def begin_read(session: Session, job: Job, file_id: int, max_deliveries: int, count: bool = True) -> bool:
    """Count one more delivery of the file before reading it (commit before the read begins). False when
    it was already taken `max_deliveries` times: it is then a `worker_lost` dead letter, not read again."""
    jobfile = session.get(JobFile, file_id, with_for_update=True)
    if jobfile is None or jobfile.status != READ_PENDING:
        return False
    if count and jobfile.deliveries >= max_deliveries:  # count: see begin_index
        detail = f"taken {jobfile.deliveries} times; its worker died (crash, OOM kill or hard time limit) each time"
        give_up(session, job, jobfile, Reason.WORKER_LOST, detail)
        return False
    jobfile.deliveries += int(count)
    return True


def give_up(session: Session, job: Job, jobfile: JobFile, reason: Reason, detail: str) -> None:
    """The file is not read: a dead letter for it (replayable) and the job goes on without it."""
    repo.add_dead_letter(session, job, Rejected(jobfile.path, "read", reason, detail), jobfile.path)
    jobfile.status, jobfile.owner, jobfile.claimed_at = FILE_FAILED, None, None


def begin_index(session: Session, job: Job, file_ids: list[int], max_deliveries: int, count: bool = True) -> list[int]:
    """Count one more delivery of each claimed file that still has documents to index, and return the files
    to index. A file already taken `max_deliveries` times has its open documents dead-lettered `worker_lost`.

    `count` is False for a Celery retry: its task raised (a bulk refused past its backoff, a database hiccup)
    in a live process, which is no worker's death. A message the broker or the reclaim sends again counts."""
    open_docs: dict[int, list[tuple[str, str]]] = {}
    for file_id, doc_id, source in session.execute(
        select(JobDocument.file_id, JobDocument.document_id, Document.source)
        .join(Document, Document.id == JobDocument.document_id)
        .where(JobDocument.job_id == job.id, JobDocument.file_id.in_(file_ids), JobDocument.outcome == Outcome.PENDING)
    ):
        if file_id is not None:  # excluded by the query's IN; the column may hold None
            open_docs.setdefault(file_id, []).append((doc_id, source))
    keep = []
    for jobfile in session.scalars(select(JobFile).where(JobFile.id.in_(list(open_docs))).with_for_update()):
        if not count or jobfile.index_deliveries < max_deliveries:
            jobfile.index_deliveries += int(count)
            keep.append(jobfile.id)
            continue
        detail = f"indexing its file was taken {jobfile.index_deliveries} times; its worker died each time"
        for doc_id, source in open_docs[jobfile.id]:
            repo.add_dead_letter(session, job, Rejected(source, "index", Reason.WORKER_LOST, detail), jobfile.path)
            repo.set_outcome(session, job.id, doc_id, Outcome.FAILED)
    return sorted(keep)
