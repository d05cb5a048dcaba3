"""Per-stage accounts of a job: seconds, items in, items out and items dropped by reason.

A step fills a `StageRecorder` for the batch it works on; the use case then adds the batch's `JobStats` to
the job's rows in `job_stages` in the batch's own transaction, so a batch that rolls back counts nothing and
a batch that commits counts once. Several workers add to one job at once: each add is an upsert that
increments in SQL, and the row it leaves locked until commit makes the merge of the drop reasons safe.

Units per stage: read, clean and dedup count documents (records of the input files); chunk takes documents
in and gives chunks out; embed and index count chunks; classify counts documents. For every stage,
items in = items out + items dropped, except chunk (documents in, chunks out).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from pipeline.store.models import Job, JobStage

# display order; a stage not named here comes after these, by name
STAGES = ("read", "clean", "dedup", "chunk", "embed", "index", "classify")


@dataclass
class StageStats:
    seconds: float = 0.0
    items_in: int = 0
    items_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def passed(self, n: int = 1) -> None:
        """`n` items went through unchanged in number."""
        self.items_in += n
        self.items_out += n

    def drop(self, reason: str, n: int = 1) -> None:
        """`n` items came in and went no further, for `reason` (a dead-letter reason code or a verdict)."""
        self.items_in += n
        self.dropped[str(reason)] = self.dropped.get(str(reason), 0) + n

    def add(self, other: StageStats) -> None:
        self.seconds += other.seconds
        self.items_in += other.items_in
        self.items_out += other.items_out
        for reason, n in other.dropped.items():
            self.dropped[reason] = self.dropped.get(reason, 0) + n

    @property
    def empty(self) -> bool:
        return not (self.seconds or self.items_in or self.items_out or self.dropped)

    def as_dict(self, stage: str) -> dict:
        return {
            "stage": stage,
            "seconds": round(self.seconds, 4),
            "items_in": self.items_in,
            "items_out": self.items_out,
            "dropped": dict(sorted(self.dropped.items())),
        }


def _stage_order(name: str) -> tuple[int, str]:
    return (STAGES.index(name) if name in STAGES else len(STAGES), name)


@dataclass
class JobStats:
    stages: dict[str, StageStats] = field(default_factory=dict)

    def __getitem__(self, stage: str) -> StageStats:
        return self.stages.setdefault(stage, StageStats())

    def get(self, stage: str) -> StageStats:
        """The stage's accounts, zero when the stage has none (without adding it)."""
        return self.stages.get(stage) or StageStats()

    def add(self, other: JobStats) -> JobStats:
        for stage, stats in other.stages.items():
            self[stage].add(stats)
        return self

    def ordered(self) -> list[tuple[str, StageStats]]:
        return sorted(((s, st) for s, st in self.stages.items() if not st.empty), key=lambda p: _stage_order(p[0]))

    def as_list(self) -> list[dict]:
        """One dict per stage in pipeline order: stage, seconds, items_in, items_out, dropped."""
        return [stats.as_dict(stage) for stage, stats in self.ordered()]


class StageRecorder:
    """What a step fills while it works through one batch: `lap` charges the time since a mark to a stage,
    and `recorder[stage]` counts its items."""

    def __init__(self) -> None:
        self.stats = JobStats()

    def __getitem__(self, stage: str) -> StageStats:
        return self.stats[stage]

    @staticmethod
    def mark() -> float:
        return time.perf_counter()

    def lap(self, stage: str, since: float) -> float:
        """Charge the time from `since` to now to `stage`; returns now, the next lap's mark."""
        now = time.perf_counter()
        self.stats[stage].seconds += now - since
        return now


# --- storage ------------------------------------------------------------------------------------


@cache
def _upsert(dialect: str):
    """Add one stage's figures to the job's row of it: built once per dialect, so that each file's accounts cost
    one cached statement (building a multi-row upsert per call was a tenth of a read task's time)."""
    inserts: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}  # each has its upsert
    if dialect not in inserts:
        raise NotImplementedError(f"job stage accounts need PostgreSQL or SQLite, not {dialect}")
    stmt = inserts[dialect](JobStage).values(
        job_id=bindparam("job_id"),
        stage=bindparam("stage"),
        seconds=bindparam("seconds"),
        items_in=bindparam("items_in"),
        items_out=bindparam("items_out"),
        dropped={},  # merged below, under the lock this statement takes
    )
    return stmt.on_conflict_do_update(
        index_elements=[JobStage.job_id, JobStage.stage],
        set_={
            "seconds": JobStage.seconds + stmt.excluded.seconds,
            "items_in": JobStage.items_in + stmt.excluded.items_in,
            "items_out": JobStage.items_out + stmt.excluded.items_out,
        },
    )


_SET_DROPPED = (
    update(JobStage)
    .where(JobStage.job_id == bindparam("job"), JobStage.stage == bindparam("at"))
    .values(dropped=bindparam("dropped"))
)


def add_job_stats(session: Session, job_id: str, stats: JobStats) -> None:
    """Add a batch's accounts to the job's, in the caller's transaction, safe beside other workers."""
    batch = [(stage, st) for stage, st in sorted(stats.stages.items()) if not st.empty]  # one lock order for all
    if not batch:
        return
    rows = [
        {"job_id": job_id, "stage": stage, "seconds": st.seconds, "items_in": st.items_in, "items_out": st.items_out}
        for stage, st in batch
    ]
    sql = session.connection()  # Core statements: the ORM's bulk paths would want primary keys, not an upsert
    sql.execute(_upsert(sql.dialect.name), rows)
    # The upsert holds these rows (PostgreSQL: row locks; SQLite: the database's write lock) until commit,
    # so reading and rewriting their drop reasons here cannot lose another worker's add.
    with_drops = {stage: st.dropped for stage, st in batch if st.dropped}
    if not with_drops:
        return
    stored = sql.execute(
        select(JobStage.stage, JobStage.dropped).where(JobStage.job_id == job_id, JobStage.stage.in_(with_drops))
    )
    merged = []
    for stage, dropped in stored:
        counts = dict(dropped or {})
        for reason, n in with_drops[stage].items():
            counts[reason] = counts.get(reason, 0) + n
        merged.append({"job": job_id, "at": stage, "dropped": counts})
    sql.execute(_SET_DROPPED, merged)


def job_stats(session: Session, job: Job) -> JobStats:
    """The job's accounts; a job from before job_stages existed shows the stage seconds it kept in its metrics."""
    rows = session.scalars(select(JobStage).where(JobStage.job_id == job.id)).all()
    if rows:
        return JobStats({r.stage: StageStats(r.seconds, r.items_in, r.items_out, dict(r.dropped or {})) for r in rows})
    return legacy_stats(job.metrics or {})


def legacy_stats(metrics: Mapping) -> JobStats:
    """Stage seconds (and the items the embed and index stages counted) from a job's metrics, as older
    versions kept them: {"embed": {"seconds": 1.5, "items": 10}, ...}."""
    stats = JobStats()
    for stage, m in metrics.items():
        if stage in STAGES and isinstance(m, Mapping) and "seconds" in m:
            items = int(m.get("items") or 0)
            stats[stage].add(StageStats(float(m["seconds"] or 0), items, items))
    return stats


def stage_totals(session: Session) -> dict[str, StageStats]:
    """Seconds and items of every job summed per stage (the metrics endpoint's counters; no drop reasons)."""
    q = select(JobStage.stage, func.sum(JobStage.seconds), func.sum(JobStage.items_in), func.sum(JobStage.items_out))
    return {
        stage: StageStats(float(seconds or 0), int(items_in or 0), int(items_out or 0))
        for stage, seconds, items_in, items_out in session.execute(q.group_by(JobStage.stage))
    }
