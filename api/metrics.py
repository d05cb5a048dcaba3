"""Prometheus metrics, read from the sources of truth at scrape time.

Workers are separate processes (often on other machines), so a counter kept in a worker's
memory would never reach this endpoint. Everything here is therefore derived from what the
workers already record: job rows (states, timestamps), per-stage accounts in `job_stages` (older jobs
kept their stage seconds in `jobs.metrics`), documents and dead letters in SQL, and the queue lists on the broker.
Latency histograms live in this process and are updated incrementally at each scrape from the jobs that
started or ended since the last one (api/metrics_jobs.py); HTTP request metrics are observed here, as requests
pass (api/observe.py).
"""

from __future__ import annotations

import logging

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from api import v1_index
from api.metrics_jobs import JobTimings, stage_counters
from pipeline.errors import ServiceUnavailable
from pipeline.jobs.stats import stage_totals
from pipeline.store import repo, totals
from pipeline.store.models import JobState
from workers import client

log = logging.getLogger(__name__)


class DocpipeCollector(Collector):
    def __init__(self, ctx):
        self.ctx = ctx
        self.timings = JobTimings(ctx)

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
        yield from self.timings.collect(session)
        yield from stage_counters(stage_totals(session), self.timings.legacy_stages())

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
