"""Reindex and rollback jobs: one tenant-spanning job row each, at most one queued or running at a time."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.store import repo
from pipeline.store.models import Job, JobState

REINDEX_KINDS = ("reindex", "rollback")
REINDEX_TENANT = "*"  # a reindex spans every tenant's documents


def create_reindex_job(session: Session, options: dict, kind: str = "reindex") -> Job:
    return repo.create_job(session, REINDEX_TENANT, [], kind=kind, options=options)


def active_reindex_job(session: Session) -> str | None:
    """The id of a reindex or rollback job still queued or running, if any."""
    return session.scalar(
        select(Job.id).where(Job.kind.in_(REINDEX_KINDS), Job.state.in_((JobState.QUEUED, JobState.RUNNING))).limit(1)
    )
