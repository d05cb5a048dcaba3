"""Sources in SQL: adding, listing, the run lease (claim → run → finish) and the backoff.

Functions get an open session from their caller and never commit. A run is claimed with one
conditional UPDATE, so two ticks (or a tick and `docpipe feeds run`) cannot both start it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session

from pipeline.errors import InvalidSchedule
from pipeline.schedule import Cron, parse_cron
from pipeline.sources.errors import InvalidSource
from pipeline.sources.fetch import check_url
from pipeline.sources.schedule import backoff_delay, format_every
from pipeline.store.models import Job, JobState
from pipeline.store.models_sources import Source, SourceKind
from pipeline.types import utcnow

_MAX_ERROR = 2000
CRON_RETRY_SECONDS = 60  # a failed cron source waits this, doubling per failure, up to its next slot


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; every one docpipe writes is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def normalise_location(kind: str, location: str) -> str:
    if kind == SourceKind.FEED:
        check_url(location)
        return location.strip()
    if kind == SourceKind.FOLDER:
        try:
            path = Path(location).expanduser().resolve()
        except (OSError, RuntimeError):  # a symlink loop (RuntimeError on Python 3.11)
            raise InvalidSource(f"cannot resolve folder {location}: a symlink loop?") from None
        if not path.is_dir():
            raise InvalidSource(f"no such folder: {location}")
        return str(path)
    raise InvalidSource(f"unknown source kind {kind!r}: use one of {', '.join(SourceKind.ALL)}")


def add_source(
    session: Session,
    kind: str,
    location: str,
    every_seconds: int,
    tenant: str = "default",
    timeout_seconds: float | None = None,
    prune: bool = False,
    cron: str | None = None,
    tz: str | None = None,
) -> Source:
    """A new source, due at once (the next tick runs it), or with `cron` at its first slot (in time zone `tz`).
    A feed with `prune` deletes the documents of items that left it (pipeline/sources/prune.py); a folder always
    deletes those of files that left it."""
    location = normalise_location(kind, location)
    schedule = source_cron(cron, tz)
    if timeout_seconds is not None and timeout_seconds <= 0:
        raise InvalidSource(f"timeout must be positive, got {timeout_seconds}")
    if prune and kind != SourceKind.FEED:
        raise InvalidSource("prune is an option of feeds: a folder always deletes the documents of removed files")
    existing = session.scalar(
        select(Source).where(Source.tenant == tenant, Source.kind == kind, Source.location == location)
    )
    if existing is not None:
        raise InvalidSource(f"{location} is already a {kind} source of tenant {tenant}: {existing.id}")
    source = Source(
        id=uuid.uuid4().hex,
        tenant=tenant,
        kind=kind,
        location=location,
        every_seconds=0 if schedule else every_seconds,
        cron=schedule.expr if schedule else None,
        timezone=schedule.tz if schedule else None,
        timeout_seconds=timeout_seconds,
        enabled=True,
        prune=prune,
        next_run_at=schedule.next_after(utcnow()) if schedule else utcnow(),
        failures=0,
        created_at=utcnow(),
    )
    session.add(source)
    session.flush()
    return source


def source_cron(cron: str | None, tz: str | None) -> Cron | None:
    """The source's cron, checked; None for an interval source (a zone without a cron is refused)."""
    if not (cron or "").strip():
        if (tz or "").strip():
            raise InvalidSource("a time zone needs a cron expression (--cron): intervals do not depend on zones")
        return None
    try:
        return parse_cron(cron or "", tz)
    except InvalidSchedule as exc:
        raise InvalidSource(str(exc)) from None


def _cron_of(source: Source) -> Cron | None:
    return Cron(source.cron, source.timezone or "UTC") if source.cron else None


def find_source(session: Session, ref: str, kind: str | None = None) -> Source | None:
    """By id or a unique id prefix (as the CLI prints them)."""
    q = select(Source).where(Source.id.startswith(ref.strip().lower())).limit(2)
    if kind:
        q = q.where(Source.kind == kind)
    rows = session.scalars(q).all()
    return rows[0] if len(rows) == 1 else None


def list_sources(session: Session, kind: str | None = None, tenant: str | None = None) -> list[Source]:
    q = select(Source).order_by(Source.created_at, Source.id)
    if kind:
        q = q.where(Source.kind == kind)
    if tenant:
        q = q.where(Source.tenant == tenant)
    return list(session.scalars(q))


def busy_reason(session: Session, source: Source, now: datetime, lease_seconds: int) -> str | None:
    """Why the source cannot start now: a live run lease, or its last job has not ended.

    A job that never ends keeps its source busy on purpose; `docpipe cancel JOB` frees it.
    """
    since = aware(source.running_since)
    if since is not None and since > now - timedelta(seconds=lease_seconds):
        return f"a run started at {since.isoformat(timespec='seconds')} has not finished"
    if source.last_job_id:
        job = session.get(Job, source.last_job_id)
        if job is not None and job.state not in JobState.FINAL:
            return f"its last job {job.id} is still {job.state}"
    return None


def claim(session: Session, source_id: str, now: datetime, lease_seconds: int, force: bool = False) -> str | None:
    """Take the run lease; returns the run's token, or None when the source is busy or not due."""
    source = session.get(Source, source_id)
    if source is None or busy_reason(session, source, now, lease_seconds):
        return None
    token = uuid.uuid4().hex
    stmt = (
        update(Source)
        .where(
            Source.id == source_id,
            or_(Source.running_since.is_(None), Source.running_since <= now - timedelta(seconds=lease_seconds)),
        )
        .values(running_since=now, run_token=token)
        .execution_options(synchronize_session=False)
    )
    if not force:
        stmt = stmt.where(Source.enabled.is_(True), Source.next_run_at <= now)
    if cast("CursorResult[Any]", session.execute(stmt)).rowcount != 1:  # an UPDATE answers a cursor result
        return None
    session.refresh(source)
    return token


def claim_due(session: Session, now: datetime, lease_seconds: int, limit: int = 500) -> list[tuple[str, str]]:
    """Claim every due source that is not busy: [(source id, run token)]."""
    due = session.scalars(
        select(Source.id)
        .where(Source.enabled.is_(True), Source.next_run_at <= now)
        .order_by(Source.next_run_at)
        .limit(limit)
    ).all()
    claimed = []
    for source_id in due:
        token = claim(session, source_id, now, lease_seconds)
        if token:
            claimed.append((source_id, token))
    return claimed


def begin_run(session: Session, source_id: str, token: str) -> Source | None:
    """The source, if this run still holds its lease (a redelivered or superseded message does not)."""
    source = session.get(Source, source_id)
    if source is None or source.run_token != token or source.running_since is None:
        return None
    return source


def finish_success(source: Source, now: datetime, message: str, job_id: str | None = None) -> None:
    started = aware(source.running_since) or now
    source.last_run_at, source.last_success_at = started, now
    source.last_status, source.last_error, source.failures = message, None, 0
    if job_id:
        source.last_job_id = job_id
    cron = _cron_of(source)
    # a cron source's next run is its first slot after this run began (pipeline/schedule.py says why)
    source.next_run_at = cron.next_after(started) if cron else started + timedelta(seconds=source.every_seconds)
    source.running_since = None


def finish_failure(source: Source, now: datetime, error: str, backoff_cap: int) -> None:
    started = aware(source.running_since) or now
    source.failures = (source.failures or 0) + 1
    cron = _cron_of(source)
    if cron:  # retried after a doubling wait from a minute on, but never past its next slot
        until_slot = int((cron.next_after(started) - started).total_seconds())
        delay = min(backoff_delay(CRON_RETRY_SECONDS, source.failures, backoff_cap), until_slot)
    else:
        delay = backoff_delay(source.every_seconds, source.failures, backoff_cap)
    source.last_run_at, source.last_error = started, error[:_MAX_ERROR]
    source.last_status = f"failed {source.failures} time(s) in a row; next try in {format_every(max(delay, 1))}"
    source.next_run_at = started + timedelta(seconds=delay)
    source.running_since = None


def source_record(source: Source) -> dict:
    rec = {
        "id": source.id,
        "tenant": source.tenant,
        "kind": source.kind,
        "location": source.location,
        "every": None if source.cron else format_every(source.every_seconds),
        "every_seconds": None if source.cron else source.every_seconds,
        "cron": source.cron,
        "timezone": source.timezone if source.cron else None,
        "timeout_seconds": source.timeout_seconds,
        "enabled": source.enabled,
        "prune": bool(source.prune) or source.kind == SourceKind.FOLDER,
        "failures": source.failures,
        "last_status": source.last_status,
        "last_error": source.last_error,
        "last_job_id": source.last_job_id,
        "running": source.running_since is not None,
        "etag": source.etag,
        "last_modified": source.last_modified,
    }
    for name in ("next_run_at", "last_run_at", "last_success_at", "created_at"):
        value = aware(getattr(source, name))
        rec[name] = value.isoformat() if value else None
    return rec
