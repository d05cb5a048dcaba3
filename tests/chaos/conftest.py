"""The chaos suite: workers, the embedded server and Elasticsearch fail during ingests, and each round checks
that the job told the truth. Every test here is `chaos` and `integration` by where it lives; the stack is the
suite's own (a server, a database and workers apart from the session's), its workers restarted with production
redelivery (an hour) and beat's sweeps running. Each round's figures go to bench/results/chaos.jsonl and a table of them
is printed when the session ends."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from tests.chaos.support import BEAT_ENV, WORKER_ENV, Round
from tests.conftest import migrated_database, noida_server, running_stack

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


# The suite kills and restarts the embedded server and the workers and leaves drift to repair: it runs on a server,
# a database and a stack of its own, so the tests after it find the session's stack as nothing had happened.
@pytest.fixture(scope="package")
def noida(tmp_path_factory):
    with noida_server(tmp_path_factory.mktemp("chaos-noida")) as proc:
        yield proc


@pytest.fixture(scope="package")
def sql_url(tmp_path_factory):
    with migrated_database(tmp_path_factory.mktemp("chaos-sql")) as url:
        yield url


@pytest.fixture(scope="package")
def stack(noida, sql_url, tmp_path_factory):
    with running_stack(noida, sql_url, tmp_path_factory.mktemp("chaos-docpipe")) as s:
        yield s


@pytest.fixture(scope="package")
def chaos(stack):
    """The suite's stack as the chaos rounds need it (production redelivery, beat); the rounds' records."""
    names = ["worker-ingest", "worker-gpu", "worker-fetch"]
    for name in names:
        restart(stack, name, **WORKER_ENV)
    with stack.beat(**BEAT_ENV):
        yield ROUNDS


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
