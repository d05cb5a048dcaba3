"""`docpipe up | down | status`: the local stack of noida-db (if needed) and three Celery workers (ingest, gpu, fetch).

Everything started is recorded, by pid, in data_dir/stack.json; `down` stops exactly that.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass

from cli.localstack.processes import pid_alive, start_noida, stop_pid
from pipeline.config import Settings
from pipeline.services import read_stack
from pipeline.types import utcnow

WORKERS = {
    # name: celery worker arguments. The gpu worker is one process (solo pool) that keeps the model loaded.
    "worker-ingest": ["-Q", "ingest", "--concurrency", "1", "--pool", "prefork"],
    "worker-gpu": ["-Q", "gpu", "--pool", "solo"],
    # feed and folder runs (and the reclaim sweep): I/O waits, so threads; a slow feed takes one of them
    "worker-fetch": ["-Q", "fetch", "--pool", "threads", "--concurrency", "8"],
}
# The gpu worker never forks, so the tokeniser may use its threads (its batches must keep a GPU fed);
# a prefork worker must not, or a child inherits a thread pool that no longer exists.
WORKER_ENV = {"worker-gpu": {"TOKENIZERS_PARALLELISM": "true"}}


@dataclass
class Component:
    name: str
    pid: int | None
    alive: bool
    detail: str


@contextmanager
def _lock(settings: Settings):
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.data_dir / "stack.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # two `up`s at once must not start two stacks
        yield


def _running(stack: dict) -> bool:
    pids = [c["pid"] for c in stack.get("components", {}).values()]
    return bool(pids) and all(pid_alive(p) for p in pids)


def is_up(settings: Settings) -> bool:
    return _running(read_stack(settings))


def worker_env(settings: Settings, redis_url: str, es_url: str) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "DOCPIPE_DATA_DIR": str(settings.data_dir.resolve()),
            "DOCPIPE_DATABASE_URL": settings.sql_url,
            "DOCPIPE_REDIS_URL": redis_url,
            "DOCPIPE_ELASTICSEARCH_URL": es_url,
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    return env


def start_worker(name: str, settings: Settings, env: dict, tag: str) -> subprocess.Popen:
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = open(logs / f"{name}.log", "ab")
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.app",
        "worker",
        "--loglevel",
        "INFO",
        "-n",
        f"{name}-{tag}@%h",
        "--without-gossip",
        "--without-mingle",
        *WORKERS[name],
    ]
    return subprocess.Popen(
        cmd,
        env={**env, **WORKER_ENV.get(name, {})},
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def start_beat(settings: Settings, env: dict) -> subprocess.Popen:
    """Celery beat: sends the sources tick (schedule file and pid file under data_dir)."""
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = open(logs / "beat.log", "ab")
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.app",
        "beat",
        "--loglevel",
        "INFO",
        "--pidfile",
        str((settings.data_dir / "beat.pid").resolve()),
    ]
    return subprocess.Popen(
        cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )


def up(settings: Settings, echo=print) -> dict:
    from migrations.runner import upgrade

    with _lock(settings):
        stack = read_stack(settings)
        if _running(stack):
            echo("docpipe is already up; nothing started.")
            return stack
        if stack:
            _stop_components(stack)  # a half-dead earlier stack: clear what is left of it
        components: dict[str, dict] = {}
        redis_url, es_url = settings.redis_url, settings.elasticsearch_url
        if not (redis_url and es_url):
            noida = start_noida(settings.data_dir / "noida")
            components["noida-db"] = {
                "pid": noida.pid,
                "detail": f"Elasticsearch {noida.elasticsearch_url}, Redis {noida.redis_url}",
            }
            redis_url, es_url = redis_url or noida.redis_url, es_url or noida.elasticsearch_url
        stack = {
            "started_at": utcnow().isoformat(),
            "redis_url": redis_url,
            "elasticsearch_url": es_url,
            "database_url": settings.sql_url,
            "components": components,
        }
        _write(settings, stack)  # record noida before anything else can fail, so `down` can stop it
        upgrade(settings.sql_url)
        env = worker_env(settings, redis_url, es_url)
        tag = str(os.getpid())
        for name in WORKERS:
            proc = start_worker(name, settings, env, tag)
            components[name] = {"pid": proc.pid, "detail": f"log {settings.data_dir / 'logs' / (name + '.log')}"}
            _write(settings, stack)
        from cli.localstack.apiserver import ensure_local_key, key_file, start_api

        try:
            api, api_url = start_api(settings, env)
        except RuntimeError:
            _stop_components(stack)
            settings.stack_file.unlink(missing_ok=True)
            raise
        components["api"] = {"pid": api.pid, "detail": f"{api_url} (dashboard; key in {key_file(settings)})"}
        stack["api_url"] = api_url
        _write(settings, stack)
        echo(f"API and dashboard: {api_url}  (local key of tenant default, also in {key_file(settings)}:)")
        echo(ensure_local_key(settings, settings.sql_url))
        beat = start_beat(settings, env)
        components["beat"] = {"pid": beat.pid, "detail": f"log {settings.data_dir / 'logs' / 'beat.log'}"}
        _write(settings, stack)
        time.sleep(1.0)
        dead = [n for n, c in components.items() if not pid_alive(c["pid"])]
        if dead:
            _stop_components(stack)
            settings.stack_file.unlink(missing_ok=True)
            raise RuntimeError(f"{', '.join(dead)} exited at start; see {settings.data_dir / 'logs'}")
        return stack


def _write(settings: Settings, stack: dict) -> None:
    tmp = settings.stack_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(stack, indent=2))
    tmp.replace(settings.stack_file)


def _stop_components(stack: dict) -> list[str]:
    stopped = []
    # workers first (they finish or hand back their task), the servers they use last
    for name, comp in sorted(stack.get("components", {}).items(), key=lambda kv: kv[0] == "noida-db"):
        if pid_alive(comp["pid"]):
            stop_pid(comp["pid"], timeout=20)
            stopped.append(name)
    return stopped


def down(settings: Settings) -> list[str]:
    with _lock(settings):
        stack = read_stack(settings)
        stopped = _stop_components(stack)
        settings.stack_file.unlink(missing_ok=True)
        return stopped


def status(settings: Settings) -> list[Component]:
    stack = read_stack(settings)
    return [
        Component(name, c["pid"], pid_alive(c["pid"]), c["detail"]) for name, c in stack.get("components", {}).items()
    ]
