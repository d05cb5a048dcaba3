"""The embedded local services: a noida-db process (Elasticsearch API + Redis) on free ports.

Used by `docpipe up` and by the tests. Only processes started here are ever stopped here.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.hosts import pid_alive


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def noida_binary() -> str:
    import noida_db

    path = Path(noida_db.__file__).with_name("noida-db")
    if not path.is_file():
        found = shutil.which("noida-db")
        if not found:
            raise RuntimeError("noida-db is not installed: pip install noida-db")
        return found
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return str(path)


def port_taken(port: int, host: str = "127.0.0.1") -> bool:
    """Whether another process holds `port`: binding it fails."""
    with socket.socket() as s:
        # connections of a process just killed linger in TIME_WAIT; they do not keep a server from listening
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


@dataclass
class NoidaProcess:
    pid: int
    es_port: int
    redis_port: int
    data_dir: str

    @property
    def elasticsearch_url(self) -> str:
        return f"http://127.0.0.1:{self.es_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def stop(self, timeout: float = 10.0) -> None:
        stop_pid(self.pid, timeout)


def start_noida(
    data_dir: Path,
    log_path: Path | None = None,
    timeout: float = 30.0,
    es_port: int | None = None,
    redis_port: int | None = None,
) -> NoidaProcess:
    """Start noida-db in the foreground of a new session (so `down` can kill it by pid), on the given ports
    (those of its previous run, so that every URL recorded stays right) or on free ones."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_path or data_dir / "noida.log", "ab")
    for label, port in (("Elasticsearch", es_port), ("Redis", redis_port)):
        if port and port_taken(port):
            raise RuntimeError(f"its {label} port {port} is taken by another process; free it and run `docpipe up`")
    es_port = es_port or free_port()
    redis_port = redis_port or free_port()
    while redis_port == es_port:
        redis_port = free_port()
    proc = subprocess.Popen(
        [
            noida_binary(),
            "start",
            "--data-dir",
            str(data_dir.resolve()),
            "--host",
            "127.0.0.1",
            "--only",
            "elasticsearch,redis",
            "--elasticsearch-port",
            str(es_port),
            "--redis-port",
            str(redis_port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"noida-db exited with status {proc.returncode}; see {log.name}")
        if port_open(es_port) and port_open(redis_port):
            return NoidaProcess(proc.pid, es_port, redis_port, str(data_dir))
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"noida-db did not open its ports within {timeout:.0f}s; see {log.name}")


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """Stop the process group led by pid: SIGTERM to the leader, which stops what it leads in its own order, then,
    once it is gone or after `timeout`, SIGKILL to whatever is left of the group.

    A Celery worker's warm shutdown lets its pool child finish the task it runs and gives back what it prefetched.
    A SIGTERM to the whole group killed that child mid-task instead, and its message stayed unacknowledged until
    the broker's visibility timeout (an hour): a job stopped by `docpipe down` waited for the revive sweep."""
    if _leads_its_group(pid):  # else the leader is gone (its pool children may not be), or pid is another's now
        try:
            os.kill(pid, signal.SIGTERM)
            _wait_gone(pid, timeout)
        except ProcessLookupError:
            pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:  # no such group: nothing of it is left
        return
    except PermissionError:  # a member that is not ours: the leader at least
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
    _wait_gone(pid, timeout)


def _leads_its_group(pid: int) -> bool:
    """Every component starts in a session of its own, so it leads its process group; a pid reused by another
    process (a component that died long ago) does not, and is never signalled."""
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)  # reaps it when it is this process's child (tests, benchmarks)
        except ChildProcessError:
            pass
        if not pid_alive(pid):
            return
        time.sleep(0.1)
