"""SIGKILL of the embedded server (noida-db: the Elasticsearch API and, in these tests, the broker's Redis) during
an ingest, restarted on the same data dir and ports. What it had acknowledged may be gone, from the index and from
the queues: the job must still end succeeded, and `index verify --repair` must leave no drift. Recovery: from the
server back to the job's end (beat resends work whose messages died with the broker)."""

from __future__ import annotations

import os
import random
import signal
import time
import uuid
from pathlib import Path

import pytest

from tests.chaos.support import DOCS, Round, check, corpus, indexing, record, verify_and_repair, wait_final, wait_for

RUN = uuid.uuid4().hex[:6]
SEPARATE_BROKER = bool(os.environ.get("DOCPIPE_TEST_REDIS_URL"))
SERVER_ROUNDS = int(os.environ.get("DOCPIPE_CHAOS_SERVER_ROUNDS", "2"))


def _queued(stack, job_id: str) -> bool:
    """The job's read tasks wait in the broker (started: its files are counted)."""
    return stack.job(job_id).total > 0


def _restart_server(noida) -> None:
    """SIGKILL noida-db and start it again on its data dir and ports; the session's fixture object follows
    the new process (its teardown stops that one)."""
    from cli.localstack.processes import port_taken, start_noida

    os.killpg(noida.pid, signal.SIGKILL)
    try:
        os.waitpid(noida.pid, 0)
    except ChildProcessError:
        pass
    wait_for(lambda: not port_taken(noida.es_port) and not port_taken(noida.redis_port), "ports never freed", 30)
    back = start_noida(Path(noida.data_dir), es_port=noida.es_port, redis_port=noida.redis_port)
    noida.pid = back.pid


def _supervise(stack) -> list[str]:
    """Start again the workers that exited, as `docpipe up` (or compose's restart policy) does: kombu's Redis
    transport can crash a worker that held an unacknowledged message when the broker dies under it (an
    AttributeError while it restores that message; the message itself comes back after the visibility
    timeout). Which ones it took is kept with the round."""
    time.sleep(2)  # a crash on the lost connection happens at once; give it the time to finish
    dead = [name for name, proc in stack.workers.items() if proc.poll() is not None]
    for name in dead:
        stack.workers.pop(name)
        stack.start_worker(name)
    return dead


def _round(chaos, stack, noida, tmp_path, scenario: str, round_no: int, started, seed: int) -> None:
    rng = random.Random(f"{RUN}-{scenario}-{round_no}")
    tenant = f"chaos-{scenario}-{round_no}-{RUN}"
    paths = corpus(tmp_path / "docs", DOCS, seed=seed)
    rec = Round(scenario, round_no, len(paths), faults=1)
    try:
        job_id = stack.submit(paths, tenant)
        wait_for(lambda: started(stack, job_id), f"job {job_id} never reached the point to interrupt")
        time.sleep(rng.uniform(0.0, 1.5))
        state = stack.job(job_id).state
        _restart_server(noida)
        rec.notes["workers_restarted"] = _supervise(stack)
        assert state in ("queued", "running"), f"job {job_id} was already {state} at the kill"
        job, rec.recovery_seconds = wait_final(stack, job_id, time.monotonic(), timeout=180)
        assert job.state == "succeeded", job.error
        verify_and_repair(stack, rec, tenant, repair=True)
        check(stack, rec, job_id, tenant, paths)
    finally:
        record(rec, chaos)


@pytest.mark.parametrize("round_no", range(1, SERVER_ROUNDS + 1))
def test_a_sigkilled_server_is_restarted_and_the_index_repaired(chaos, stack, noida, tmp_path, round_no):
    _round(chaos, stack, noida, tmp_path, "server-sigkill", round_no, indexing, 300_000 + 1_000 * round_no)


@pytest.mark.parametrize("round_no", range(1, max(SERVER_ROUNDS - 1, 1) + 1))
def test_a_broker_restart_with_tasks_queued_loses_no_document(chaos, stack, noida, tmp_path, round_no):
    if SEPARATE_BROKER:
        pytest.skip("DOCPIPE_TEST_REDIS_URL: the broker is a Redis these tests did not start and may not restart")
    # noida-db's Redis is the broker: a restart of the broker is one of the server, here timed while the
    # job's read tasks still wait in the queue
    _round(chaos, stack, noida, tmp_path, "broker-restart", round_no, _queued, 400_000 + 1_000 * round_no)
