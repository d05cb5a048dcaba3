"""Idempotency keys: a POST retried with the same key gets the first response again instead of a second job.

The first request claims the key (a row with no status yet), runs, then records its response; a retry
replays it; a different request under the same key is refused; a retry that arrives while the first still
runs is told to wait. A claim whose request died without an answer is taken over after STALE; answers are
kept for KEPT. A first request that ended in a server error releases its key, so a retry runs again.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from pipeline.store.models_keys import IdempotentRequest
from pipeline.types import utcnow

STALE = timedelta(minutes=10)
KEPT = timedelta(hours=24)
MAX_KEY = 255


class Claim(enum.StrEnum):
    NEW = "new"  # this request runs, then records its response
    RUNNING = "running"  # the first request with this key has not answered yet
    DONE = "done"  # the first request answered: replay it (if the fingerprint matches)


def claim(session: Session, tenant: str, key: str) -> tuple[Claim, IdempotentRequest | None]:
    """Claim `key` for the tenant; flushes a new row, so a racing claim fails at its insert or commit."""
    now = utcnow()
    row = session.get(IdempotentRequest, (tenant, key))
    if row is not None:
        age = now - _aware(row.created_at)
        if row.status is None and age < STALE:
            return Claim.RUNNING, row
        if row.status is not None and age < KEPT:
            return Claim.DONE, row
        session.delete(row)  # an abandoned claim or an expired answer: the key is free again
        session.flush()
    session.add(IdempotentRequest(tenant=tenant, key=key, created_at=now))
    session.flush()
    return Claim.NEW, None


def record(
    session: Session, tenant: str, key: str, fingerprint: str, status: int, content_type: str | None, body: bytes
) -> None:
    row = session.get(IdempotentRequest, (tenant, key))
    if row is None:  # released or expired meanwhile: keep the answer anyway
        row = IdempotentRequest(tenant=tenant, key=key, created_at=utcnow())
        session.add(row)
    row.fingerprint, row.status, row.content_type, row.body = fingerprint, status, content_type, body
    session.flush()


def release(session: Session, tenant: str, key: str) -> None:
    row = session.get(IdempotentRequest, (tenant, key))
    if row is not None and row.status is None:
        session.delete(row)
        session.flush()


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
