"""The reclaim sweep's selection: the files of open jobs held by dead task processes, to be sent again.

Runs when a worker starts and every few seconds from beat (DOCPIPE_WORKER_RECLAIM_EVERY_SECONDS). A file
being read goes back as a read of its task's group; a read file whose documents were being indexed goes
back alone, so that one poison file that kills the gpu worker costs only its own deliveries. The claims are
dropped here, so the next sweep does not send the same work again while the resent task waits in its queue;
the revive sweep (pipeline/jobs/revive.py) still catches work whose message was lost before any claim.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pipeline.jobs import heartbeat
from pipeline.jobs.ownership import READ_PENDING
from pipeline.jobs.revive import Resend, Step, groups
from pipeline.store.models import Job, JobFile, JobState


def select_reclaims(
    session: Session,
    ttl: float,
    files_per_task: int,
    now: datetime | None = None,
    here: Callable[[str], bool | None] = heartbeat.alive_here,
) -> list[Resend]:
    """The work to send again, job by job; the dead owners' claims are dropped (send after the commit)."""
    rows = session.execute(
        select(JobFile.id, JobFile.job_id, JobFile.owner, JobFile.status)
        .join(Job, Job.id == JobFile.job_id)
        .where(JobFile.owner.is_not(None), Job.state.in_((JobState.QUEUED, JobState.RUNNING)))
        .order_by(Job.created_at, JobFile.id)
    ).all()
    dead = heartbeat.dead_workers(session, {r.owner for r in rows}, ttl, now, here)
    lost = [r for r in rows if r.owner in dead]
    if not lost:
        return []
    session.execute(
        update(JobFile)
        .where(JobFile.id.in_([r.id for r in lost]), JobFile.owner.in_(dead))
        .values(owner=None, claimed_at=None)
        .execution_options(synchronize_session=False)
    )
    reads: dict[str, list[int]] = {}
    resends: list[Resend] = []
    for r in lost:
        if r.status == READ_PENDING:
            reads.setdefault(r.job_id, []).append(r.id)
        else:
            resends.append(Resend(r.job_id, Step.INDEX, (r.id,)))
    for job_id, file_ids in reads.items():
        resends += [Resend(job_id, Step.READ, tuple(g)) for g in groups(file_ids, files_per_task)]
    return resends
