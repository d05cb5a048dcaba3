"""The worker lease of a training job, on a real (SQLite) schema: a live holder keeps the job until its
lease expires, a dead one on this host loses it at once, heartbeats extend it."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest

from pipeline.hosts import is_dead_here, pid_alive, process_id
from pipeline.jobs import lease
from pipeline.store import repo
from pipeline.store.db import session_scope
from pipeline.store.models import Job, utcnow

LEASE = 30.0


@pytest.fixture
def job_id(url):
    with session_scope(url) as s:
        return repo.create_job(s, "t1", ["train.csv"], kind="train").id


def _alive(_owner: str) -> bool:
    return False  # owner_dead: every other owner counts as alive


def _claim(url, job_id, owner, now, owner_dead=_alive) -> bool:
    with session_scope(url) as s:
        return lease.claim(s.get(Job, job_id), owner, LEASE, now, owner_dead)


def test_a_live_holder_keeps_the_job_until_its_lease_expires(url, job_id):
    t0 = utcnow()
    assert _claim(url, job_id, "a:1", t0)
    assert not _claim(url, job_id, "b:2", t0 + timedelta(seconds=LEASE - 1))
    assert _claim(url, job_id, "a:1", t0 + timedelta(seconds=LEASE - 1))  # the holder's own redelivery goes on
    assert _claim(url, job_id, "b:2", t0 + timedelta(seconds=2 * LEASE))  # expired (read back zone-less)
    with session_scope(url) as s:
        job = s.get(Job, job_id)
        assert job.lease_owner == "b:2" and job.metrics == {}


def test_a_dead_holder_loses_the_job_at_once(url, job_id):
    t0 = utcnow()
    assert _claim(url, job_id, "a:1", t0)
    assert _claim(url, job_id, "b:2", t0 + timedelta(seconds=1), owner_dead=lambda owner: owner == "a:1")


def test_renewal_extends_the_lease_and_fails_once_another_worker_took_over(url, job_id):
    t0 = utcnow()
    with session_scope(url) as s:
        job = s.get(Job, job_id)
        assert lease.claim(job, "a:1", LEASE, t0, _alive)
        assert lease.renew(job, "a:1", LEASE, t0 + timedelta(seconds=LEASE - 1), _alive)
    assert not _claim(url, job_id, "b:2", t0 + timedelta(seconds=LEASE + 1))  # renewed: still held
    assert _claim(url, job_id, "b:2", t0 + timedelta(seconds=3 * LEASE))
    with session_scope(url) as s:
        assert not lease.renew(s.get(Job, job_id), "a:1", LEASE, t0 + timedelta(seconds=3 * LEASE + 1), _alive)


def test_release_frees_the_job_only_for_its_holder(url, job_id):
    t0 = utcnow()
    assert _claim(url, job_id, "a:1", t0)
    with session_scope(url) as s:
        job = s.get(Job, job_id)
        lease.release(job, "b:2")
        assert job.lease_owner == "a:1"
        lease.release(job, "a:1")
    assert _claim(url, job_id, "b:2", t0 + timedelta(seconds=1))


def test_a_pid_on_this_host_is_dead_once_it_has_exited():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    host = process_id().rpartition(":")[0]
    assert pid_alive(os.getpid()) and not is_dead_here(process_id())
    assert not pid_alive(child.pid) and is_dead_here(f"{host}:{child.pid}")
    assert not is_dead_here(f"another-host.example:{child.pid}")  # a process elsewhere is never known dead


def test_the_lease_spans_several_heartbeats():
    assert lease.lease_seconds(1.0) == lease.MIN_LEASE_SECONDS
    assert lease.lease_seconds(20.0) == 120.0
