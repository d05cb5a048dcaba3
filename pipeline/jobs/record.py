"""The job record every shell shows: the CLI prints it (--json), the API returns it, the dashboard draws it.

Values stay as the domain holds them (times are datetimes); each shell writes them its own way and adds only
its own presentation (the API: progress, upload names instead of server paths).
"""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.jobs.stats import JobStats
from pipeline.store.models import DeadLetter, Job
from pipeline.types import as_utc

TIMES = ("created_at", "started_at", "finished_at", "heartbeat_at")


def job_record(job: Job, letters: Iterable[DeadLetter] | None = None, stages: JobStats | None = None) -> dict:
    """Identity, state, counters, metrics, error, inputs and times of `job`; `stages` adds its per-stage
    accounts in pipeline order, `letters` its dead letters."""
    rec: dict = {
        "id": job.id,
        "tenant": job.tenant,
        "kind": job.kind,
        "state": job.state,
        "counters": job.counters(),
        "metrics": job.metrics or {},
        "error": job.error,
        "inputs": list(job.inputs or []),
        **{field: as_utc(t) if (t := getattr(job, field)) else None for field in TIMES},
    }
    if stages is not None:
        rec["stages"] = stages.as_list()
    if letters is not None:
        rec["dead_letters"] = [dead_letter_record(d) for d in letters]
    return rec


def dead_letter_record(letter: DeadLetter) -> dict:
    return {
        "id": letter.id,
        "source": letter.source,
        "stage": letter.stage,
        "reason": letter.reason,
        "detail": letter.detail,
        "created_at": letter.created_at,
        "replayed": letter.replayed_at is not None,
        "replay_job_id": letter.replay_job_id,
    }
