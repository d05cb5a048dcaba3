"""Cron schedules in a time zone, and the rule that turns the last run into the next one.

The rule, for sources and for beat's scheduled reindex alike: the next run is the first slot of the
expression strictly after the moment the last run started (or was claimed). The due time lives in SQL, not
in beat, so:

- a beat restart never fires a slot twice: a slot that ran moved the due time past itself;
- slots missed while nothing ran are not lost but coalesced: the source is overdue, runs once when beat is
  back, and its next due time is the first slot after that run;
- two beats (or a tick and a manual run) cannot both take a slot: claiming is one conditional UPDATE.

Time zones are IANA names read with zoneinfo; croniter walks local wall time, so "0 6 * * *" in
Europe/Berlin is 04:00 UTC in summer and 05:00 UTC in winter. Around DST changes: a local time that does not
exist (spring forward) runs at the end of the gap; a fixed-hour slot that occurs twice (fall back) runs only
at its first occurrence, as classic cron does, while wildcard-hour expressions ("*/30 * * * *") keep their
spacing in real time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError
from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from pipeline.errors import InvalidSchedule
from pipeline.store.models_schedules import Schedule
from pipeline.types import as_utc

DEFAULT_TZ = "UTC"
_ALIASES = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_MAX_LEN = 120


def zone(name: str | None) -> ZoneInfo:
    """The IANA time zone `name` (UTC when empty); InvalidSchedule with a hint otherwise."""
    name = (name or DEFAULT_TZ).strip()
    try:
        if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidSchedule(
            f"unknown time zone {name!r}: use an IANA name such as UTC, Europe/Berlin or America/New_York"
        ) from None


@dataclass(frozen=True)
class Cron:
    """A standard five-field cron expression (or @daily and its kin) evaluated in time zone `tz`."""

    expr: str
    tz: str = DEFAULT_TZ

    @cached_property
    def zoneinfo(self) -> ZoneInfo:
        return zone(self.tz)

    @cached_property
    def _fixed_hours(self) -> bool:
        # an expression that names its hours (not "*" or a step over all of them) runs once per named hour
        hours = croniter(self.expr).expanded[1]
        return hours != ["*"] and len(hours) < 24

    def next_after(self, moment: datetime) -> datetime:
        """The first slot strictly after `moment` (an aware datetime; naive ones are UTC), in UTC."""
        walker = croniter(self.expr, as_utc(moment).astimezone(self.zoneinfo))
        while True:
            slot = cast(datetime, walker.get_next(datetime))
            if not (self._fixed_hours and _second_occurrence(slot, self.zoneinfo)):
                return slot.astimezone(UTC)

    def upcoming(self, moment: datetime, n: int) -> list[datetime]:
        out: list[datetime] = []
        for _ in range(n):
            moment = self.next_after(moment)
            out.append(moment)
        return out


def _second_occurrence(slot: datetime, tz: ZoneInfo) -> bool:
    """Whether `slot` is the repeat of a wall-clock time that the fall-back hour shows twice."""
    wall = slot.replace(tzinfo=None)
    first = wall.replace(tzinfo=tz, fold=0)
    return first.utcoffset() != slot.utcoffset() and first.astimezone(UTC) < slot.astimezone(UTC)


def parse_cron(expr: str, tz: str | None = None) -> Cron:
    """A Cron, or InvalidSchedule naming what is wrong. Five fields (minute hour day month weekday) or an alias;
    croniter's seconds and year fields are refused, so that an expression means what classic cron says."""
    text = " ".join((expr or "").split())
    hint = 'use five fields "minute hour day-of-month month day-of-week", e.g. "0 6 * * *", or @daily'
    if not text or len(text) > _MAX_LEN:
        raise InvalidSchedule(f"bad cron expression {expr!r}: {hint}")
    if text.startswith("@"):
        if text.lower() not in _ALIASES:
            raise InvalidSchedule(f"bad cron expression {expr!r}: known aliases are {', '.join(sorted(_ALIASES))}")
        text = text.lower()
    elif len(text.split(" ")) != 5:
        raise InvalidSchedule(f"bad cron expression {expr!r}: {hint}")
    try:
        croniter(text)
    except (CroniterError, ValueError, KeyError) as exc:
        raise InvalidSchedule(f"bad cron expression {expr!r}: {exc}; {hint}") from None
    cron = Cron(text, (tz or DEFAULT_TZ).strip())
    cron.zoneinfo  # noqa: B018 - validates the time zone now, at the edge, not at the first tick
    return cron


def claim_slot(session: Session, name: str, cron: Cron, now: datetime) -> bool:
    """Take the due slot of the named schedule (beat's reindex): True at most once per slot.

    A schedule seen for the first time, or whose expression or zone changed, is due at its next slot from now:
    changing the setting neither fires at once nor replays old slots. Commit is the caller's.
    """
    row = session.get(Schedule, name)
    if row is None or (row.cron, row.timezone) != (cron.expr, cron.tz):
        if row is None:
            row = Schedule(name=name)
            session.add(row)
        row.cron, row.timezone, row.next_run_at = cron.expr, cron.tz, cron.next_after(now)
        session.flush()
        return False
    due = as_utc(row.next_run_at)
    if due > now:
        return False
    taken = session.execute(
        update(Schedule)
        .where(Schedule.name == name, Schedule.next_run_at == row.next_run_at)
        .values(next_run_at=cron.next_after(now), last_run_at=now)
        .execution_options(synchronize_session=False)
    )
    return cast("CursorResult[Any]", taken).rowcount == 1


def describe(cron: Cron, now: datetime, n: int = 3) -> str:
    """'0 6 * * * (Europe/Berlin), next 2024-03-31 04:00 UTC, ...' for listings and errors."""
    nexts = ", ".join(t.strftime("%Y-%m-%d %H:%M") for t in cron.upcoming(now, n))
    return f"{cron.expr} ({cron.tz}); next (UTC) {nexts}"
