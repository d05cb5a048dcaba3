"""The chaos suite: workers, the embedded server and Elasticsearch fail during ingests, and each round checks
that the job told the truth. Every test here is `chaos` and `integration` by where it lives; the stack is the
session's (tests/conftest.py), its workers restarted for the suite with production redelivery (an hour) and
beat's sweeps running, then restored. Each round's figures go to bench/results/chaos.jsonl and a table of them
is printed when the session ends."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from tests.chaos.support import BEAT_ENV, WORKER_ENV, Round

CHAOS_DIR = Path(__file__).parent
ROUNDS: list[Round] = []


def pytest_collection_modifyitems(config, items):
    for item in items:
        if CHAOS_DIR in Path(item.path).parents:
            item.add_marker(pytest.mark.chaos)
            item.add_marker(pytest.mark.integration)


def restart(stack, name: str, **env: str) -> None:
    """Stop worker `name` cleanly (its heartbeat row goes) and start it again with `env` on the stack's."""
    from cli.localstack.processes import stop_pid

    proc = stack.workers.pop(name, None)
    if proc is not None:
        stop_pid(proc.pid, timeout=15)
        proc.wait()
    stack.start_worker(name, **env)


@pytest.fixture(scope="package")
def chaos(stack):
    """The stack as the chaos rounds need it, with beat; the rounds' records. The stack's own workers (a
    short visibility timeout) are back afterwards for the tests that follow."""
    names = ["worker-ingest", "worker-gpu", "worker-fetch"]
    for name in names:
        restart(stack, name, **WORKER_ENV)
    try:
        with stack.beat(**BEAT_ENV):
            yield ROUNDS
    finally:
        for name in names:
            restart(stack, name)


def _p50_max(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} / {max(values):.1f}" if values else "-"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not ROUNDS:
        return
    by: dict[str, list[Round]] = {}
    for r in ROUNDS:
        by.setdefault(r.scenario, []).append(r)
    head = f"{'scenario':<26} {'rounds':>6} {'docs':>6} {'lost':>5} {'dup':>5} {'drift':>6} {'left':>6}"
    head += f" {'recovery s p50/max':>20}"
    write = terminalreporter.write_line
    terminalreporter.section("chaos suite (bench/results/chaos.jsonl)")
    write(head)
    for scenario, rounds in by.items():
        recovery = [r.recovery_seconds for r in rounds if r.recovery_seconds is not None]
        write(
            f"{scenario:<26} {len(rounds):>6} {sum(r.docs for r in rounds):>6} {sum(r.lost for r in rounds):>5} "
            f"{sum(r.duplicate_chunks for r in rounds):>5} {sum(r.drift_found for r in rounds):>6} "
            f"{sum(r.drift_after_repair for r in rounds):>6} {_p50_max(recovery):>20}"
        )
    write("drift: chunks verify found before any repair; left: drift left after the repair (must be 0)")
