"""Prometheus metrics, read from the sources of truth at scrape time.

Workers are separate processes (often on other machines), so a counter kept in a worker's
memory would never reach this endpoint. Everything here is therefore derived from what the
workers already record: job rows (states, timestamps), per-stage accounts in `job_stages` (older jobs
kept their stage seconds in `jobs.metrics`), documents and dead letters in SQL, and the queue lists on the broker.
Latency histograms are rebuilt from job rows on every scrape: exact, and cumulative as long
as job rows are kept; the query reads only four columns.
"""

from __future__ import annotations

import logging
from bisect import bisect_left

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from api import v1_index
from pipeline.errors import ServiceUnavailable
from pipeline.jobs.stats import stage_totals
from pipeline.store import repo, totals
from pipeline.store.models import JobState
from workers import client

log = logging.getLogger(__name__)

BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, float("inf"))


def histogram(name: str, doc: str, values: list[float]) -> HistogramMetricFamily:
    counts = [0] * len(BUCKETS)
    for v in values:
        counts[bisect_left(BUCKETS, v)] += 1
    cumulative, running = [], 0
    for le, n in zip(BUCKETS, counts):
        running += n
        cumulative.append(("+Inf" if le == float("inf") else str(le), running))
    return HistogramMetricFamily(name, doc, buckets=cumulative, sum_value=sum(values))


class DocpipeCollector(Collector):
    def __init__(self, ctx):
        self.ctx = ctx

    def collect(self):
        with self.ctx.session() as session:
            yield from self._jobs(session)
            yield from self._corpus(session)
        yield from self._queues()

    def _jobs(self, session):
        by_state = totals.jobs_by_state(session)
        jobs = GaugeMetricFamily("docpipe_jobs", "Jobs by state", labels=["state"])
        for state in JobState.ALL:
            jobs.add_metric([state], by_state.get(state, 0))
        yield jobs
        waits, runs = [], []
        stage_seconds: dict[str, float] = {}
        stage_items: dict[str, float] = {}
        for created, started, finished, stages in totals.started_job_times(session):
            waits.append(max(0.0, (started - created).total_seconds()))
            if finished is not None:
                runs.append(max(0.0, (finished - started).total_seconds()))
            for stage, m in (stages or {}).items():
                if isinstance(m, dict):
                    stage_seconds[stage] = stage_seconds.get(stage, 0.0) + float(m.get("seconds", 0) or 0)
                    stage_items[stage] = stage_items.get(stage, 0.0) + float(m.get("items", 0) or 0)
        for stage, st in stage_totals(session).items():  # jobs since job_stages; older ones kept theirs in metrics
            stage_seconds[stage] = stage_seconds.get(stage, 0.0) + st.seconds
            stage_items[stage] = stage_items.get(stage, 0.0) + st.items_in
        yield histogram("docpipe_job_queue_wait_seconds", "From job creation to its first task running", waits)
        yield histogram("docpipe_job_run_seconds", "From a job's first task to its end", runs)
        seconds = CounterMetricFamily(
            "docpipe_stage_seconds",
            "Task time spent per pipeline stage, summed over jobs (read, clean, dedup, chunk, embed, index)",
            labels=["stage"],
        )
        items = CounterMetricFamily("docpipe_stage_items", "Items processed per pipeline stage", labels=["stage"])
        for stage in sorted(stage_seconds):
            seconds.add_metric([stage], stage_seconds[stage])
            items.add_metric([stage], stage_items[stage])
        yield seconds
        yield items

    def _corpus(self, session):
        docs = GaugeMetricFamily("docpipe_documents", "Documents by status", labels=["status"])
        for status, n in totals.documents_by_status(session).items():
            docs.add_metric([status], n)
        yield docs
        yield GaugeMetricFamily(
            "docpipe_chunks_indexed", "Chunks of indexed documents", value=repo.chunk_total(session)
        )
        letters = GaugeMetricFamily(
            "docpipe_dead_letters", "Dead letters by reason and whether replayed", labels=["reason", "replayed"]
        )
        for reason, was_replayed, n in totals.dead_letters_by_reason(session):
            letters.add_metric([reason, "true" if was_replayed else "false"], n)
        yield letters
        yield from v1_index.drift_metrics(session)  # index verify: drift the last full verify left

    def _queues(self):
        depth = GaugeMetricFamily("docpipe_queue_depth", "Tasks waiting in each Celery queue", labels=["queue"])
        up = GaugeMetricFamily("docpipe_broker_up", "1 when the broker answered this scrape")
        try:
            for queue in client.QUEUES:
                depth.add_metric([queue], client.queue_depth(queue, settings=self.ctx.settings))
            up.add_metric([], 1)
        except ServiceUnavailable as exc:  # a broker outage must not hide the SQL metrics
            log.warning("metrics: broker unreachable: %s", exc)
            up.add_metric([], 0)
        yield depth
        yield up


def registry_for(ctx) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DocpipeCollector(ctx))
    return registry
