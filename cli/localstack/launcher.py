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
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cli.localstack.processes import pid_alive, start_noida, stop_pid
from pipeline.config import Settings
from pipeline.errors import ConfigError
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


class StackError(ConfigError):
    """One component of the local stack did not start; the others were left as they were."""


def up(settings: Settings, echo=print) -> dict:
    """Start what of the stack is not running, and only that: a component that runs is left alone, one that died
    starts again on the ports it had (noida-db's, the API's), so every URL recorded and printed stays right.

    A component that fails to start raises StackError naming it and its log; the others keep running.
    """
    from migrations.runner import upgrade

    with _lock(settings):
        stack = read_stack(settings)
        components = stack.setdefault("components", {})
        if components and _running(stack):
            echo("docpipe is already up; nothing started.")
            return stack
        dead = [name for name, c in components.items() if not pid_alive(c["pid"])]
        if dead:
            echo(f"not running: {', '.join(dead)}; starting only that (the rest keeps running).")
        stack.setdefault("started_at", utcnow().isoformat())
        stack["database_url"] = settings.sql_url
        redis_url, es_url = settings.redis_url, settings.elasticsearch_url
        if redis_url and es_url and "noida-db" in dead:
            del components["noida-db"]  # the configured services replace it
        elif not (redis_url and es_url):
            noida = _keep_or_start_noida(settings, stack)
            redis_url, es_url = redis_url or noida["redis_url"], es_url or noida["elasticsearch_url"]
        moved = stack.get("redis_url", redis_url) != redis_url or stack.get("elasticsearch_url", es_url) != es_url
        stack["redis_url"], stack["elasticsearch_url"] = redis_url, es_url
        _write(settings, stack)  # record noida before anything else can fail, so `down` can stop it
        if moved:  # the services are elsewhere now: what still runs holds the old addresses
            _stop_components({"components": {n: c for n, c in components.items() if n != "noida-db"}})
        upgrade(settings.sql_url)
        env = worker_env(settings, redis_url, es_url)
        tag = str(os.getpid())
        logs = settings.data_dir / "logs"
        started = []
        for name in WORKERS:
            if _keep_or_start(settings, stack, name, lambda name=name: _worker(settings, env, tag, name)):
                started.append(name)
        from cli.localstack.apiserver import ensure_local_key, key_file, start_api

        recorded_port = components.get("api", {}).get("port") or _port_of(stack.get("api_url"))

        def api() -> dict:
            proc, url = start_api(settings, env, port=recorded_port)
            stack["api_url"] = url
            return {
                "pid": proc.pid,
                "port": int(url.rsplit(":", 1)[1]),
                "detail": f"{url} (dashboard; key in {key_file(settings)})",
            }

        if _keep_or_start(settings, stack, "api", api, logs / "api.log"):
            started.append("api")
        echo(f"API and dashboard: {stack['api_url']}  (local key of tenant default, also in {key_file(settings)}:)")
        echo(ensure_local_key(settings, settings.sql_url))
        if _keep_or_start(settings, stack, "beat", lambda: _beat(settings, env)):
            started.append("beat")
        if started:
            time.sleep(1.0)
        exited = [n for n in started if not pid_alive(components[n]["pid"])]
        if exited:
            raise StackError(
                f"{', '.join(exited)} exited at start; see {', '.join(str(logs / (n + '.log')) for n in exited)}"
                " (the rest keeps running; `docpipe up` again starts only what is missing)"
            )
        return stack


def _port_of(url: str | None) -> int | None:
    return urlsplit(url).port if url else None


def _worker(settings: Settings, env: dict, tag: str, name: str) -> dict:
    proc = start_worker(name, settings, env, tag)
    return {"pid": proc.pid, "detail": f"log {settings.data_dir / 'logs' / (name + '.log')}"}


def _beat(settings: Settings, env: dict) -> dict:
    proc = start_beat(settings, env)
    return {"pid": proc.pid, "detail": f"log {settings.data_dir / 'logs' / 'beat.log'}"}


def _keep_or_start_noida(settings: Settings, stack: dict) -> dict:
    """noida-db's URLs: those of the running one, or of one started on the ports it had (free ones at first)."""
    components = stack["components"]
    recorded = components.get("noida-db")
    es_port = redis_port = None
    if recorded is not None:
        es_port = recorded.get("es_port") or _port_of(stack.get("elasticsearch_url"))
        redis_port = recorded.get("redis_port") or _port_of(stack.get("redis_url"))

    def start() -> dict:
        noida = start_noida(settings.data_dir / "noida", es_port=es_port, redis_port=redis_port)
        return {
            "pid": noida.pid,
            "es_port": noida.es_port,
            "redis_port": noida.redis_port,
            "detail": f"Elasticsearch {noida.elasticsearch_url}, Redis {noida.redis_url}",
        }

    _keep_or_start(settings, stack, "noida-db", start, settings.data_dir / "noida" / "noida.log")
    noida = components["noida-db"]
    es = noida.get("es_port") or _port_of(stack.get("elasticsearch_url"))
    redis = noida.get("redis_port") or _port_of(stack.get("redis_url"))
    return {"elasticsearch_url": f"http://127.0.0.1:{es}", "redis_url": f"redis://127.0.0.1:{redis}/0"}


def _keep_or_start(
    settings: Settings, stack: dict, name: str, start: Callable[[], dict], log: Path | None = None
) -> bool:
    """Start `name` unless it runs; True when it was started. A failure raises StackError and changes nothing else."""
    components = stack["components"]
    recorded = components.get(name)
    if recorded is not None and pid_alive(recorded["pid"]):
        return False
    if recorded is not None:
        stop_pid(recorded["pid"], timeout=5)  # what the dead leader left in its process group (pool children)
    log = log or settings.data_dir / "logs" / f"{name}.log"
    try:
        components[name] = start()
    except (RuntimeError, OSError) as exc:
        said = str(exc)
        raise StackError(f"{name} did not start: {said}{'' if 'see ' in said else f'; see {log}'}") from exc
    _write(settings, stack)
    return True


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
