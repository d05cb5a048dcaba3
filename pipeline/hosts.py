"""This machine's processes: whether a pid still runs, and the name a worker process goes by."""

from __future__ import annotations

import os
import socket


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def process_id() -> str:
    """host:pid of this process: unique across the machines that share one database."""
    return f"{socket.gethostname()}:{os.getpid()}"


def is_dead_here(process: str) -> bool:
    """True when `process` (host:pid) ran on this host and has exited; a process elsewhere is never known dead."""
    host, _, pid = process.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))
