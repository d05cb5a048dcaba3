"""Shared fixtures. Integration tests run real processes: noida-db (Elasticsearch API and, by default,
the broker), real Celery workers, and real SQL (SQLite, or PostgreSQL with DOCPIPE_TEST_DATABASE=postgres;
DOCPIPE_TEST_REDIS_URL points the broker at another Redis)."""

from __future__ import annotations

import os
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(config, items):
    """Tests under tests/integration talk to real services: they are `integration` by where they live, so the fast
    lane (`-m "not integration and not slow"`) cannot pick one up because its module forgot the mark."""
    for item in items:
        if INTEGRATION_DIR in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)


@contextmanager
def noida_server(data_dir: Path):
    """noida-db (the Elasticsearch API and a Redis) on free ports, for the block."""
    from cli.localstack.processes import start_noida

    proc = start_noida(data_dir)
    try:
        yield proc
    finally:
        proc.stop()


@contextmanager
def migrated_database(folder: Path):
    """A database at the schema's head: SQLite in `folder`, or the PostgreSQL DOCPIPE_TEST_DATABASE names."""
    from migrations.runner import upgrade
    from tests.sqlurls import sql_database

    kind = os.environ.get("DOCPIPE_TEST_DATABASE", "sqlite")
    with sql_database(kind, folder) as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def noida(tmp_path_factory):
    with noida_server(tmp_path_factory.mktemp("noida")) as proc:
        yield proc


@pytest.fixture(scope="session")
def sql_url(tmp_path_factory):
    with migrated_database(tmp_path_factory.mktemp("sql")) as url:
        yield url


@pytest.fixture
def own_sql_url(tmp_path):
    """A database of the test's own, at the schema's head: for documents that say "indexed" but have no chunks
    anywhere, which a reindex or a verify of the shared stack would rightly count as drift."""
    with migrated_database(tmp_path) as url:
        yield url


class Stack:
    """A docpipe stack for tests: settings in the environment, workers as real processes."""

    def __init__(self, env: dict, data_dir: Path):
        self.env, self.data_dir = env, data_dir
        self.workers: dict[str, object] = {}

    def settings(self):
        from pipeline.config import Settings

        return Settings()

    def start_worker(self, name: str, **env: str):
        """Start worker `name` of the launcher, with `env` on top of the stack's environment."""
        from cli.localstack.launcher import start_worker

        self.workers[name] = start_worker(
            name, self.settings(), {**os.environ, **self.env, **env}, uuid.uuid4().hex[:6]
        )
        return self.workers[name]

    def kill_worker(self, name: str) -> None:
        import signal

        proc = self.workers.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        from cli.localstack.processes import stop_pid

        for proc in self.workers.values():
            stop_pid(proc.pid, timeout=15)
            proc.wait()
        self.workers.clear()

    @contextmanager
    def beat(self, **env: str):
        """Celery beat with the stack's settings and `env` on top, for the block."""
        from cli.localstack.launcher import start_beat
        from cli.localstack.processes import stop_pid

        proc = start_beat(self.settings(), {**os.environ, **self.env, **env})
        try:
            yield proc
        finally:
            stop_pid(proc.pid, timeout=15)
            proc.wait()

    @contextmanager
    def paused(self, worker: str, queue: str):
        """The worker stops consuming `queue` (the task it runs, if any, finishes) until the block ends:
        what is sent meanwhile waits, in order, behind what was already queued."""
        import socket

        from workers.app import app

        args = self.workers[worker].args  # started with -n <name>-<tag>@%h
        names = [args[args.index("-n") + 1].replace("%h", socket.gethostname())]
        deadline = time.monotonic() + 60
        # a worker that has just started may not answer control messages yet: ask until it does
        while not app.control.cancel_consumer(queue, destination=names, reply=True, timeout=5):
            assert time.monotonic() < deadline, f"{worker} never answered cancel_consumer"
        try:
            yield
        finally:
            assert app.control.add_consumer(queue, destination=names, reply=True, timeout=60)

    def es(self):
        from pipeline.services import elasticsearch_client

        return elasticsearch_client(self.settings())

    def run_job(self, paths: list[Path], tenant: str, timeout: float = 300) -> dict:
        job_id = self.submit(paths, tenant)
        return self.wait(job_id, timeout)

    def submit(self, paths: list[Path], tenant: str) -> str:
        from pipeline.store import repo
        from pipeline.store.db import session_scope
        from workers.app import configure
        from workers.tasks_ingest import start_job

        configure(self.settings())
        with session_scope(self.env["DOCPIPE_DATABASE_URL"]) as session:
            job_id = repo.create_job(session, tenant, [str(p) for p in paths]).id
        start_job.delay(job_id)
        return job_id

    def job(self, job_id: str):
        from pipeline.store import repo
        from pipeline.store.db import session_scope

        with session_scope(self.env["DOCPIPE_DATABASE_URL"]) as session:
            return repo.get_job(session, job_id)

    def wait(self, job_id: str, timeout: float = 300, lenient: bool = False) -> dict:
        """The job once it ended; past `timeout` an AssertionError, or None when `lenient`."""
        from pipeline.store.models import JobState

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job.state in JobState.FINAL:
                return job
            for name, proc in self.workers.items():
                if proc.poll() is not None:
                    raise AssertionError(f"{name} exited with {proc.returncode}; see {self.data_dir}/logs")
            time.sleep(0.3)
        if lenient:
            return None
        raise AssertionError(f"job {job_id} did not finish within {timeout}s: {self.job(job_id).state}")


@pytest.fixture(scope="session")
def stack(noida, sql_url, tmp_path_factory):
    with running_stack(noida, sql_url, tmp_path_factory.mktemp("docpipe")) as s:
        yield s


@contextmanager
def settings_environment(env: dict[str, str]):
    """`env` in os.environ (and the settings read again) for the block; what was there before, after it."""
    from pipeline.config import get_settings

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()


@contextmanager
def running_stack(
    noida,
    sql_url: str,
    data_dir: Path,
    workers: tuple[str, ...] = ("worker-ingest", "worker-gpu", "worker-fetch"),
    **overrides: str,
):
    """A test stack of its own (broker key prefix, index prefix) with its settings in the environment and
    `workers` running, for the block; `overrides` go on top of the test settings."""
    run = uuid.uuid4().hex[:8]
    env = {
        "DOCPIPE_DATA_DIR": str(data_dir),
        "DOCPIPE_DATABASE_URL": sql_url,
        "DOCPIPE_ELASTICSEARCH_URL": noida.elasticsearch_url,
        "DOCPIPE_REDIS_URL": os.environ.get("DOCPIPE_TEST_REDIS_URL", noida.redis_url),
        "DOCPIPE_BROKER_KEY_PREFIX": f"docpipe-test-{run}:",
        "DOCPIPE_INDEX_PREFIX": f"docpipe-test-{run}",
        # a killed worker's task comes back quickly
        "DOCPIPE_BROKER_VISIBILITY_TIMEOUT": "8",
        "DOCPIPE_FILES_PER_TASK": "4",
        "DOCPIPE_MAX_FILE_BYTES": "200000",
        "DOCPIPE_FETCH_ALLOW_NETWORKS": "127.0.0.0/8",  # feeds in tests come from a loopback server
        "DOCPIPE_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",  # and webhooks go to one
        **overrides,
    }
    with settings_environment(env):
        s = Stack(env, data_dir)
        try:
            for name in workers:  # worker-fetch: feed runs and the reclaim sweep
                s.start_worker(name)
            yield s
        finally:
            s.stop()


@contextmanager
def stack_of_its_own(noida, tmp_path_factory, name: str, workers: tuple[str, ...] | None = None, **overrides: str):
    """A stack with a database and an index prefix of its own, for a module whose reindexes build from all of
    SQL: other modules' documents (and the fabricated ones some write) must not join its versions."""
    data_dir = tmp_path_factory.mktemp(f"docpipe-{name}")
    with migrated_database(tmp_path_factory.mktemp(f"{name}-sql")) as sql_url:
        if workers is None:
            with running_stack(noida, sql_url, data_dir, **overrides) as stack:
                yield stack
        else:
            with running_stack(noida, sql_url, data_dir, workers, **overrides) as stack:
                yield stack
