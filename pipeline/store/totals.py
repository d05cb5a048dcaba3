"""Totals over every tenant, for monitoring (/metrics): no tenant's rows leave here, only counts and times."""

from __future__ import annotations

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from pipeline.store.models import DeadLetter, Document, Job


def jobs_by_state(session: Session) -> dict[str, int]:
    return {state: int(n) for state, n in session.execute(select(Job.state, func.count()).group_by(Job.state))}


def started_job_times(session: Session) -> list[Row]:
    """(created_at, started_at, finished_at, metrics) of every job that started; metrics hold older jobs' stages."""
    return list(
        session.execute(
            select(Job.created_at, Job.started_at, Job.finished_at, Job.metrics).where(Job.started_at.is_not(None))
        )
    )


def documents_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Document.status, func.count()).group_by(Document.status))
    return {status: int(n) for status, n in rows}


def dead_letters_by_reason(session: Session) -> list[tuple[str, bool, int]]:
    """(reason, replayed, count) for every reason and replay state that has dead letters."""
    replayed = DeadLetter.replayed_at.is_not(None)
    rows = session.execute(select(DeadLetter.reason, replayed, func.count()).group_by(DeadLetter.reason, replayed))
    return [(reason, bool(was_replayed), int(n)) for reason, was_replayed, n in rows]
