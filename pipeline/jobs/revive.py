"""The revive sweep's selection: which stalled jobs get which of their next tasks sent again (file jobs, and
reindex and rollback jobs, whose builds go one message at a time).

A job has stalled when no task touched it for a while, although SQL says work is open: Redis loses a
message whose worker was killed between taking it off the queue and recording it as unacknowledged.
Work is resent only when no message of that job waits in the queue it goes to (one waiting may be the "lost"
work itself); other jobs' work and beat's own sweeps in the queue hold nothing back. Every task resent is safe
to run twice, so a task that was merely slow costs one no-op rerun.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.reindex.jobs import REINDEX_KINDS
from pipeline.store import repo
from pipeline.store.models import JobFile, JobState


class Step(enum.StrEnum):
    START = "start"  # list the job's files and send their reads
    READ = "read"  # read (clean, dedup, chunk) a group of files; the ingest queue
    INDEX = "index"  # embed and index a group of read files' documents; the gpu queue
    REINDEX = "reindex"  # the next step of a reindex or rollback job; the gpu queue


@dataclass(frozen=True)
class Resend:
    job_id: str
    step: Step
    file_ids: tuple[int, ...] = ()


def groups(ids: list[int], size: int, sizes: list[int] | None = None, max_bytes: int | None = None) -> list[list[int]]:
    """`ids` in runs of at most `size`: the file groups one task handles. With the files' `sizes`, a run also
    stops before it passes `max_bytes` in all (a file larger than that makes a run of its own)."""
    if sizes is None or max_bytes is None:
        return [ids[i : i + size] for i in range(0, len(ids), size)]
    runs: list[list[int]] = []
    total = 0
    for file_id, nbytes in zip(ids, sizes, strict=True):
        if not runs or len(runs[-1]) >= size or total + nbytes > max_bytes:
            runs.append([])
            total = 0
        runs[-1].append(file_id)
        total += nbytes
    return runs


def file_groups(session: Session, ids: list[int], size: int, max_bytes: int) -> list[list[int]]:
    """groups() of a job's files by their size on disk now (a vanished file counts 0: its read rejects it)."""
    paths = dict(session.execute(select(JobFile.id, JobFile.path).where(JobFile.id.in_(ids))).tuples().all())
    return groups(ids, size, [_size(paths.get(i)) for i in ids], max_bytes)


def _size(path: str | None) -> int:
    try:
        return os.stat(path).st_size if path else 0
    except OSError:
        return 0


# The ids of the jobs with messages waiting in a queue (workers.client.waiting_jobs); None when that cannot be
# told (a queue too long to read, a message that cannot be read): then every job counts as waiting there.
Waiting = frozenset[str] | None


def _free(waiting: Waiting, job_id: str) -> bool:
    """True when none of the job's messages waits in the queue, so its open work there may have been lost."""
    return waiting is not None and job_id not in waiting


def select_resends(
    session: Session,
    stalled_after: timedelta,
    ingest_waiting: Waiting,
    gpu_waiting: Waiting,
    files_per_task: int,
    bytes_per_task: int | None = None,
) -> list[Resend]:
    """The tasks to send again, job by job (in creation order). Each revived job gets a heartbeat, so
    that the next sweep gives the resent tasks another stall period; send them after the commit."""
    resends: list[Resend] = []

    def split(ids: list[int]) -> list[list[int]]:
        if bytes_per_task is None:
            return groups(ids, files_per_task)
        return file_groups(session, ids, files_per_task, bytes_per_task)

    for job in repo.stalled_jobs(session, stalled_after):
        unread, unindexed = repo.open_work(session, job.id)
        found: list[Resend] = []
        if _free(ingest_waiting, job.id):
            if job.state == JobState.QUEUED:
                found.append(Resend(job.id, Step.START))
            else:
                found += [Resend(job.id, Step.READ, tuple(g)) for g in split(unread)]
        if _free(gpu_waiting, job.id) and job.state == JobState.RUNNING and (unindexed or not unread):
            # with nothing open at all, an index task with no files closes the job
            found += [Resend(job.id, Step.INDEX, tuple(g)) for g in split(unindexed)] or [Resend(job.id, Step.INDEX)]
        if found:
            repo.heartbeat(session, job)
            resends += found
    # a reindex step that ran twice finds its batch written, or its version swapped, and moves on
    for job in repo.stalled_jobs(session, stalled_after, REINDEX_KINDS):
        if _free(gpu_waiting, job.id):
            repo.heartbeat(session, job)
            resends.append(Resend(job.id, Step.REINDEX))
    return resends


def revived_jobs(resends: list[Resend]) -> list[str]:
    """The distinct job ids of `resends`, in order."""
    return list(dict.fromkeys(r.job_id for r in resends))
