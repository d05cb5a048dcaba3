"""A training run's progress into its job row: throttled, kept as history, and the run's heartbeat.

The trainer calls the writer with (kind, info) events; each write renews the worker's lease on the job
and checks that the job is still open, so a cancel (or a failure recorded elsewhere) stops the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy.orm import Session

from pipeline.jobs import lease
from pipeline.store.models import Job, JobState, utcnow
from pipeline.train.trainer import Cancelled

SessionFactory = Callable[[], AbstractContextManager[Session]]

# Events that only say "still alive": written at most once per `every` seconds. Evaluations, resumes
# and checkpointed steps are always written, since the history and the resume point depend on them.
_THROTTLED = ("heartbeat", "neighbours")


class LeaseLost(Cancelled):
    """Another worker took the job over while this one stalled past its lease: this run stops, that one goes on."""


class ProgressWriter:
    def __init__(
        self,
        sessions: SessionFactory,
        job_id: str,
        run: str,
        every: float,
        owner: str | None = None,
        lease_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.sessions, self.job_id, self.run, self.every = sessions, job_id, run, every
        self.owner = owner or lease.worker_id()
        self.lease_seconds = lease.lease_seconds(every) if lease_seconds is None else lease_seconds
        self.clock = clock
        self.last: float | None = None  # when the last write happened; None before the first

    def _throttled(self, kind: str, info: dict) -> bool:
        quiet = kind in _THROTTLED or (kind == "step" and not info.get("checkpointed"))
        return quiet and self.last is not None and self.clock() - self.last < self.every

    def __call__(self, kind: str, info: dict) -> None:
        if self._throttled(kind, info):
            return
        self.last = self.clock()
        with self.sessions() as session:
            job = session.get(Job, self.job_id)
            if job is None or job.state in JobState.FINAL:
                raise Cancelled()
            if not lease.renew(job, self.owner, self.lease_seconds):
                raise LeaseLost(f"job {self.job_id} is held by {job.lease_owner}")
            job.metrics = self._merged(dict(job.metrics or {}), kind, info)

    def _merged(self, metrics: dict, kind: str, info: dict) -> dict:
        progress = {**metrics.get("progress", {}), "run": self.run, "updated_at": utcnow().isoformat()}
        if kind == "step":
            progress.update(info, phase="training")
        elif kind == "neighbours":
            progress.update(info, phase="neighbours")
        elif kind == "eval":
            progress.update(phase="training", eval=info)
            history = dict(metrics.get("history", {}))
            history[self.run] = [*history.get(self.run, []), info]
            metrics["history"] = history
        elif kind == "resumed":
            metrics["resumed"] = [*metrics.get("resumed", []), {"run": self.run, "step": info["step"]}]
        metrics["progress"] = progress
        return metrics
