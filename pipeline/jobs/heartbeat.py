"""Worker heartbeats in SQL: a task process records that it lives; a silent one is taken as dead.

A process is named host:pid (pipeline/hosts.py). On the machine that asks, a pid that has exited is dead
at once, and one that still runs is alive whatever its last beat (a long SQLite write may hold the beat
back); a process elsewhere is dead once its last beat is older than the TTL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pipeline.hosts import pid_alive
from pipeline.store.models import WorkerBeat
from pipeline.types import as_utc, utcnow


def beat(session: Session, worker: str, name: str = "", now: datetime | None = None) -> None:
    """Record that `worker` (host:pid) is alive now; `name` is its Celery node."""
    now = now or utcnow()
    row = session.get(WorkerBeat, worker)
    if row is None:
        session.add(WorkerBeat(worker=worker, name=name, started_at=now, seen_at=now))
    else:
        row.seen_at = now


def forget(session: Session, worker: str) -> None:
    """A worker that stops cleanly drops its row: its work is free at once."""
    session.execute(delete(WorkerBeat).where(WorkerBeat.worker == worker))


def prune(session: Session, older_than: timedelta, now: datetime | None = None) -> None:
    """Drop the rows of workers silent for `older_than` (children replaced, machines gone)."""
    session.execute(delete(WorkerBeat).where(WorkerBeat.seen_at < (now or utcnow()) - older_than))


def alive_here(worker: str) -> bool | None:
    """True or False for a process of this host; None for one elsewhere (only its beats can tell)."""
    import socket

    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    return pid_alive(int(pid))


def dead_workers(
    session: Session,
    workers: Iterable[str],
    ttl: float,
    now: datetime | None = None,
    here: Callable[[str], bool | None] = alive_here,
) -> set[str]:
    """Those of `workers` that are dead: exited on this host, or elsewhere silent for `ttl` seconds (or never seen)."""
    workers = set(workers)
    if not workers:
        return set()
    cutoff = (now or utcnow()) - timedelta(seconds=ttl)
    seen = {
        w: at
        for w, at in session.execute(
            select(WorkerBeat.worker, WorkerBeat.seen_at).where(WorkerBeat.worker.in_(workers))
        )
    }
    dead = set()
    for worker in workers:
        local = here(worker)
        if local is not None:
            if not local:
                dead.add(worker)
        elif worker not in seen or as_utc(seen[worker]) < cutoff:
            dead.add(worker)
    return dead
