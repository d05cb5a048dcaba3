"""`docpipe down` stops a component's process group leader first, so that it can stop what it leads in its own
order (a Celery worker finishing its task), and kills whatever the group still holds afterwards."""

import subprocess
import sys
import time
from pathlib import Path

from cli.localstack.processes import pid_alive, stop_pid

# The leader starts a child that works for a moment and writes `done`; on SIGTERM it waits for the child, as a
# Celery worker's warm shutdown waits for the task its pool child runs.
PATIENT_LEADER = """
import signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(1.5); open(sys.argv[1], 'w').write('ok')",
                          sys.argv[1]])
open(sys.argv[2], "w").write(str(child.pid))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(child.wait()))
time.sleep(60)
"""

# The leader leaves at once on SIGTERM; its child ignores SIGTERM and would outlive it.
CARELESS_LEADER = """
import signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                          "open(__import__('sys').argv[1], 'w').write('up'); time.sleep(60)", sys.argv[1]])
open(sys.argv[2], "w").write(str(child.pid))
time.sleep(60)
"""


def _gone(pid: int) -> bool:
    """True once pid has exited (a SIGKILL is delivered a moment after it is sent)."""
    deadline = time.monotonic() + 10
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _start(code: str, tmp_path: Path) -> tuple[subprocess.Popen, Path, int]:
    mark, child_pid = tmp_path / "mark", tmp_path / "child.pid"
    leader = subprocess.Popen([sys.executable, "-c", code, str(mark), str(child_pid)], start_new_session=True)
    deadline = time.monotonic() + 30
    while not (child_pid.exists() and child_pid.read_text()):
        assert time.monotonic() < deadline, "the leader never started its child"
        time.sleep(0.05)
    return leader, mark, int(child_pid.read_text())


def test_the_leader_is_asked_first_and_its_child_finishes_its_work(tmp_path):
    leader, done, child = _start(PATIENT_LEADER, tmp_path)
    time.sleep(0.3)  # both are running: the child is mid-work
    stop_pid(leader.pid, timeout=20)
    # a SIGTERM to the whole group killed the child mid-work: `done` was never written
    assert done.read_text() == "ok"
    assert not pid_alive(leader.pid) and _gone(child)


def test_what_the_group_still_holds_once_the_leader_left_is_killed(tmp_path):
    leader, up, child = _start(CARELESS_LEADER, tmp_path)
    deadline = time.monotonic() + 30
    while not up.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stop_pid(leader.pid, timeout=5)
    assert not pid_alive(leader.pid) and _gone(child)


def test_a_group_whose_leader_is_gone_is_still_stopped(tmp_path):
    leader, up, child = _start(CARELESS_LEADER, tmp_path)
    leader.kill()
    leader.wait()
    stop_pid(leader.pid, timeout=5)  # as `up` does for a dead component's pool children
    assert _gone(child)


def test_a_process_that_leads_no_group_is_never_signalled():
    # what a recorded pid may be once its component died long ago and the pid was given to another process
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # in this process's group
    try:
        stop_pid(other.pid, timeout=1)
        assert other.poll() is None and pid_alive(other.pid)
    finally:
        other.kill()
        other.wait()
