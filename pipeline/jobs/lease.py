"""The worker lease of a long-running job (training): which process holds it, and until when.

A run can outlive the broker's visibility timeout; the copy the broker then redelivers must not train
the same model beside the first. The holder renews its lease with every heartbeat; another worker may
take the job once the lease has expired, or at once when the holder's pid is gone from this host.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from pipeline.hosts import is_dead_here, process_id
from pipeline.store.models import Job
from pipeline.types import as_utc, utcnow

# A lease spans several heartbeats, so that one slow step does not hand the job to another worker.
HEARTBEATS_PER_LEASE = 6
MIN_LEASE_SECONDS = 30.0


def worker_id() -> str:
    """The lease owner name of this process (host:pid)."""
    return process_id()


def lease_seconds(heartbeat_seconds: float) -> float:
    return max(HEARTBEATS_PER_LEASE * heartbeat_seconds, MIN_LEASE_SECONDS)


def held_by_other(
    job: Job, owner: str, now: datetime | None = None, owner_dead: Callable[[str], bool] = is_dead_here
) -> bool:
    """True while another process holds an unexpired lease on the job and is not known dead."""
    holder, expires = job.lease_owner, job.lease_expires_at
    if not holder or holder == owner or expires is None or owner_dead(holder):
        return False
    return as_utc(expires) > (now or utcnow())


def claim(
    job: Job,
    owner: str,
    lease_seconds: float,
    now: datetime | None = None,
    owner_dead: Callable[[str], bool] = is_dead_here,
) -> bool:
    """Take (or keep) the job's lease for `owner`; False while another live worker holds it."""
    now = now or utcnow()
    if held_by_other(job, owner, now, owner_dead):
        return False
    job.lease_owner = owner
    job.lease_expires_at = now + timedelta(seconds=lease_seconds)
    job.heartbeat_at = now
    return True


def renew(
    job: Job,
    owner: str,
    lease_seconds: float,
    now: datetime | None = None,
    owner_dead: Callable[[str], bool] = is_dead_here,
) -> bool:
    """A heartbeat: extend `owner`'s lease. False when another worker has taken the job over meanwhile
    (this one stalled past its lease), so that the two stop training side by side."""
    return claim(job, owner, lease_seconds, now, owner_dead)


def release(job: Job, owner: str | None = None) -> None:
    """Drop the lease (the run ended); with `owner`, only if that process still holds it."""
    if owner is None or job.lease_owner == owner:
        job.lease_owner = job.lease_expires_at = None
