"""Totals over every tenant, for monitoring (/metrics): no tenant's rows leave here, only counts and times."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from pipeline.store.models import DeadLetter, Document, Job, JobStage, JobState, WorkerBeat


def jobs_by_state(session: Session) -> dict[str, int]:
    return {state: int(n) for state, n in session.execute(select(Job.state, func.count()).group_by(Job.state))}


def documents_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Document.status, func.count()).group_by(Document.status))
    return {status: int(n) for status, n in rows}


def dead_letters_by_reason(session: Session) -> list[tuple[str, bool, int]]:
    """(reason, replayed, count) for every reason and replay state that has dead letters."""
    replayed = DeadLetter.replayed_at.is_not(None)
    rows = session.execute(select(DeadLetter.reason, replayed, func.count()).group_by(DeadLetter.reason, replayed))
    return [(reason, bool(was_replayed), int(n)) for reason, was_replayed, n in rows]


# --- incremental reads for /metrics: each returns only what changed since the caller's cursor ------------------


def jobs_started_since(session: Session, since: datetime | None) -> list[Row]:
    """(id, created_at, started_at) of the jobs that started at or after `since` (all when None)."""
    q = select(Job.id, Job.created_at, Job.started_at).where(Job.started_at.is_not(None))
    if since is not None:
        q = q.where(Job.started_at >= since)
    return list(session.execute(q))


def jobs_finished_since(session: Session, since: datetime | None) -> list[Row]:
    """(id, started_at, finished_at, metrics) of the jobs that ended at or after `since` (all when None);
    metrics hold the stage seconds of jobs older than job_stages."""
    q = select(Job.id, Job.started_at, Job.finished_at, Job.metrics).where(Job.finished_at.is_not(None))
    if since is not None:
        q = q.where(Job.finished_at >= since)
    return list(session.execute(q))


def stage_seconds_of(session: Session, job_ids: list[str]) -> list[tuple[str, float]]:
    """(stage, seconds) of each stage of each of `job_ids`."""
    if not job_ids:
        return []
    q = select(JobStage.stage, JobStage.seconds).where(JobStage.job_id.in_(job_ids))
    return [(stage, float(seconds or 0)) for stage, seconds in session.execute(q)]


def oldest_queued_job(session: Session) -> datetime | None:
    """When the oldest job still waiting for its first task was created."""
    return session.scalar(select(func.min(Job.created_at)).where(Job.state == JobState.QUEUED))


def live_worker_processes(session: Session, since: datetime) -> list[tuple[str, str]]:
    """(process host:pid, Celery node) of the task processes whose heartbeat is at or after `since`."""
    return [
        (w, n)
        for w, n in session.execute(select(WorkerBeat.worker, WorkerBeat.name).where(WorkerBeat.seen_at >= since))
    ]
