"""Job, stage, queue-latency and worker metrics, kept up to date incrementally at each scrape.

This API process keeps the histograms; each scrape observes only the jobs that started or ended since the
last one, found by a cursor on `started_at` / `finished_at` (read back a minute, with the ids already seen,
so that a transaction that committed late is not missed). A fresh process reads the history once at its
first scrape, so every API process (uvicorn --workers N) serves the same complete histograms.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from pipeline.store import totals

BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, float("inf"))
LATE_COMMIT = timedelta(seconds=60)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite drops the zone


class _Cursor:
    """Rows with a time at or after the cursor, each handed out once."""

    def __init__(self) -> None:
        self.at: datetime | None = None
        self.seen: dict[str, datetime] = {}

    def since(self) -> datetime | None:
        return None if self.at is None else self.at - LATE_COMMIT

    def new(self, rows, when) -> list:
        fresh = [r for r in rows if r.id not in self.seen]
        for r in fresh:
            moment = _aware(when(r))
            self.seen[r.id] = moment
            self.at = moment if self.at is None else max(self.at, moment)
        if self.at is not None:
            horizon = self.at - 2 * LATE_COMMIT
            self.seen = {i: t for i, t in self.seen.items() if t >= horizon}
        return fresh


class JobTimings:
    """docpipe_job_queue_wait_seconds, docpipe_job_run_seconds and docpipe_job_stage_seconds (histograms),
    docpipe_queue_oldest_job_seconds and the workers alive."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.lock = threading.Lock()
        self.started, self.finished = _Cursor(), _Cursor()
        self.waits = Histogram(
            "docpipe_job_queue_wait_seconds",
            "From job creation to its first task running",
            buckets=BUCKETS,
            registry=None,
        )
        self.runs = Histogram(
            "docpipe_job_run_seconds", "From a job's first task to its end", buckets=BUCKETS, registry=None
        )
        self.stages = Histogram(
            "docpipe_job_stage_seconds",
            "Task time one job spent in a pipeline stage (read, clean, dedup, chunk, embed, index), as it ends",
            ["stage"],
            buckets=BUCKETS,
            registry=None,
        )
        self.legacy_seconds: dict[str, float] = {}  # stage seconds older jobs kept in jobs.metrics
        self.legacy_items: dict[str, float] = {}

    def collect(self, session):
        with self.lock:
            self._observe(session)
            yield from self.waits.collect()
            yield from self.runs.collect()
            yield from self.stages.collect()
        now = datetime.now(UTC)
        oldest = totals.oldest_queued_job(session)
        yield GaugeMetricFamily(
            "docpipe_queue_oldest_job_seconds",
            "Age of the oldest job still waiting for its first task (0 when none waits)",
            value=max(0.0, (now - _aware(oldest)).total_seconds()) if oldest else 0.0,
        )
        ttl = self.ctx.settings.worker.heartbeat_ttl
        processes = totals.live_worker_processes(session, now - timedelta(seconds=ttl))
        yield GaugeMetricFamily(
            "docpipe_workers_alive",
            f"Celery workers with a task process whose heartbeat is younger than {ttl:g} s",
            value=len({node for _, node in processes}),
        )
        yield GaugeMetricFamily(
            "docpipe_worker_processes_alive", "Task processes whose heartbeat is that young", value=len(processes)
        )

    def legacy_stages(self) -> tuple[dict[str, float], dict[str, float]]:
        return dict(self.legacy_seconds), dict(self.legacy_items)

    def _observe(self, session) -> None:
        for job in self.started.new(totals.jobs_started_since(session, self.started.since()), lambda r: r.started_at):
            self.waits.observe(max(0.0, (job.started_at - job.created_at).total_seconds()))
        ended = self.finished.new(totals.jobs_finished_since(session, self.finished.since()), lambda r: r.finished_at)
        for job in ended:
            if job.started_at is not None:
                self.runs.observe(max(0.0, (job.finished_at - job.started_at).total_seconds()))
            for stage, m in (job.metrics or {}).items():
                if isinstance(m, dict):
                    self.legacy_seconds[stage] = self.legacy_seconds.get(stage, 0.0) + float(m.get("seconds", 0) or 0)
                    self.legacy_items[stage] = self.legacy_items.get(stage, 0.0) + float(m.get("items", 0) or 0)
        for stage, seconds in totals.stage_seconds_of(session, [j.id for j in ended]):
            self.stages.labels(stage).observe(seconds)


def stage_counters(stage_totals: dict, legacy: tuple[dict[str, float], dict[str, float]]):
    """docpipe_stage_seconds and docpipe_stage_items: job_stages summed in SQL, plus what older jobs kept."""
    stage_seconds, stage_items = dict(legacy[0]), dict(legacy[1])
    for stage, st in stage_totals.items():
        stage_seconds[stage] = stage_seconds.get(stage, 0.0) + st.seconds
        stage_items[stage] = stage_items.get(stage, 0.0) + st.items_in
    seconds = CounterMetricFamily(
        "docpipe_stage_seconds",
        "Task time spent per pipeline stage, summed over jobs (read, clean, dedup, chunk, embed, index)",
        labels=["stage"],
    )
    items = CounterMetricFamily("docpipe_stage_items", "Items processed per pipeline stage", labels=["stage"])
    for stage in sorted(stage_seconds):
        seconds.add_metric([stage], stage_seconds[stage])
        items.add_metric([stage], stage_items[stage])
    return seconds, items
