"""The revive sweep's selection: which stalled file jobs get which of their next tasks sent again.

A job has stalled when no task touched it for a while, although SQL says work is open: Redis loses a
message whose worker was killed between taking it off the queue and recording it as unacknowledged.
Work is resent only while the queue it goes to is empty (a busy queue may still hold the message), and
every task resent is safe to run twice, so a task that was merely slow costs one no-op rerun.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from pipeline.store import repo
from pipeline.store.models import JobState


class Step(enum.StrEnum):
    START = "start"  # list the job's files and send their reads
    READ = "read"  # read (clean, dedup, chunk) a group of files; the ingest queue
    INDEX = "index"  # embed and index a group of read files' documents; the gpu queue


@dataclass(frozen=True)
class Resend:
    job_id: str
    step: Step
    file_ids: tuple[int, ...] = ()


def groups(ids: list[int], size: int) -> list[list[int]]:
    """`ids` in runs of at most `size`: the file groups one task handles."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def select_resends(
    session: Session, stalled_after: timedelta, ingest_idle: bool, gpu_idle: bool, files_per_task: int
) -> list[Resend]:
    """The tasks to send again, job by job (in creation order). Each revived job gets a heartbeat, so
    that the next sweep gives the resent tasks another stall period; send them after the commit."""
    resends: list[Resend] = []
    for job in repo.stalled_jobs(session, stalled_after):
        unread, unindexed = repo.open_work(session, job.id)
        found: list[Resend] = []
        if ingest_idle:
            if job.state == JobState.QUEUED:
                found.append(Resend(job.id, Step.START))
            else:
                found += [Resend(job.id, Step.READ, tuple(g)) for g in groups(unread, files_per_task)]
        if gpu_idle and job.state == JobState.RUNNING and (unindexed or not unread):
            # with nothing open at all, an index task with no files closes the job
            found += [Resend(job.id, Step.INDEX, tuple(g)) for g in groups(unindexed, files_per_task)] or [
                Resend(job.id, Step.INDEX)
            ]
        if found:
            repo.heartbeat(session, job)
            resends += found
    return resends


def revived_jobs(resends: list[Resend]) -> list[str]:
    """The distinct job ids of `resends`, in order."""
    return list(dict.fromkeys(r.job_id for r in resends))
