"""The API as a component of the local stack (`docpipe up`), and the local key it prints."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from cli.localstack.processes import free_port, port_open, port_taken
from pipeline.paths import api_key_file

if TYPE_CHECKING:
    from pipeline.config import Settings

LOCAL_TENANT = "default"


def key_file(settings: Settings):
    return api_key_file(settings.data_dir)


def ensure_local_key(settings: Settings, sql_url: str) -> str:
    """The key of tenant "default" kept in data_dir/api-key (mode 0600); made at the first `up`.

    A key revoked since is replaced, so the file always holds one that works.
    """
    from pipeline.store import apikeys as keys
    from pipeline.store.db import session_scope

    path = key_file(settings)
    if path.exists():
        key = path.read_text().strip()
        with session_scope(sql_url) as session:
            if keys.authenticate(session, key) is not None:
                return key
    with session_scope(sql_url) as session:
        _, key = keys.create_key(session, LOCAL_TENANT, name="local (docpipe up)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others, not even briefly
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    os.replace(tmp, path)
    return key


def start_api(
    settings: Settings, env: dict, timeout: float = 60.0, port: int | None = None
) -> tuple[subprocess.Popen, str]:
    """uvicorn in its own session (so `down` can stop it by pid), on settings.api.port, else `port` (the one of
    its previous run, so that its URL stays the same), else a free one."""
    host, port = settings.api.host, settings.api.port or port or free_port()
    probe = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    if port_taken(port, host):
        raise RuntimeError(f"its port {port} is taken by another process; free it (or set DOCPIPE_API_PORT)")
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = open(logs / "api.log", "ab")
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "api.app:create_app",
        "--factory",
        "--host",
        host,
        "--port",
        str(port),
        "--no-access-log",
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited with status {proc.returncode}; see {logs / 'api.log'}")
        if port_open(port, probe):
            return proc, f"http://{probe}:{port}"
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the API did not listen on {host}:{port} within {timeout:.0f}s; see {logs / 'api.log'}")
