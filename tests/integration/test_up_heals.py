"""`docpipe up` heals a local stack: it starts only what died, on the ports it had, and a component that cannot
start is named in one line while the others keep running; `docpipe ingest` heals it the same way."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cli.localstack.processes import pid_alive

pytestmark = pytest.mark.integration


def docpipe(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCPIPE_")}
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def ok(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    proc = docpipe(cwd, *args)
    assert proc.returncode == 0, f"docpipe {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return proc


def kill(pid: int) -> None:
    os.killpg(pid, signal.SIGKILL)  # the whole group: a worker's pool children die with it
    # gone from /proc, not only a zombie: a threaded process closes its sockets after its main thread is a zombie
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def pids(stack: dict) -> dict[str, int]:
    return {name: c["pid"] for name, c in stack["components"].items()}


def healthy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/healthz", timeout=30) as response:
        return json.loads(response.read())["status"] == "ok"


def test_up_restarts_only_what_died_on_its_ports_and_names_what_cannot_start(tmp_path):
    stack_file = tmp_path / ".docpipe" / "stack.json"
    try:
        ok(tmp_path, "up")
        first = json.loads(stack_file.read_text())
        url, before = first["api_url"], pids(first)
        assert set(before) == {"noida-db", "worker-ingest", "worker-gpu", "worker-fetch", "api", "beat"}

        kill(before["worker-ingest"])
        assert "DEAD" in ok(tmp_path, "status").stdout
        said = ok(tmp_path, "up").stderr
        assert "not running: worker-ingest" in said
        after = pids(json.loads(stack_file.read_text()))
        assert after["worker-ingest"] != before["worker-ingest"] and pid_alive(after["worker-ingest"])
        assert {n: p for n, p in after.items() if n != "worker-ingest"} == {
            n: p for n, p in before.items() if n != "worker-ingest"
        }
        before = after

        kill(before["noida-db"])
        ok(tmp_path, "up")
        healed = json.loads(stack_file.read_text())
        after = pids(healed)
        assert after["noida-db"] != before["noida-db"] and pid_alive(after["noida-db"])
        assert {n: p for n, p in after.items() if n != "noida-db"} == {
            n: p for n, p in before.items() if n != "noida-db"
        }
        noida = healed["components"]["noida-db"]
        assert (noida["es_port"], noida["redis_port"]) == (
            first["components"]["noida-db"]["es_port"],
            first["components"]["noida-db"]["redis_port"],
        )
        assert healed["elasticsearch_url"] == first["elasticsearch_url"] and healed["redis_url"] == first["redis_url"]
        assert healed["api_url"] == url and healthy(url)
        before = after

        kill(before["api"])
        port = int(url.rsplit(":", 1)[1])
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            refused = docpipe(tmp_path, "up")
            assert refused.returncode == 1, refused.stderr
            error = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
            assert len(error) == 1 and "api did not start" in error[0] and f"port {port} is taken" in error[0]
            assert "Traceback" not in refused.stderr
            still = pids(json.loads(stack_file.read_text()))
            assert {n: p for n, p in still.items() if n != "api"} == {n: p for n, p in before.items() if n != "api"}
            assert all(pid_alive(p) for n, p in still.items() if n != "api")
        ok(tmp_path, "up")
        last = json.loads(stack_file.read_text())
        assert last["api_url"] == url and healthy(url)
        assert {n: p for n, p in pids(last).items() if n != "api"} == {n: p for n, p in before.items() if n != "api"}
        before = pids(last)

        # a command that needs the stack heals it the same way instead of stopping what runs
        kill(before["worker-fetch"])
        (tmp_path / "note.txt").write_text("The harbour pilots agreed a new rota for the winter storms.")
        rec = json.loads(ok(tmp_path, "ingest", "note.txt", "--wait", "--json").stdout)
        assert rec["state"] == "succeeded" and rec["counters"]["done"] == 1
        after = pids(json.loads(stack_file.read_text()))
        assert after["worker-fetch"] != before["worker-fetch"] and pid_alive(after["worker-fetch"])
        assert {n: p for n, p in after.items() if n != "worker-fetch"} == {
            n: p for n, p in before.items() if n != "worker-fetch"
        }
    finally:
        docpipe(tmp_path, "down")


def test_a_job_stopped_by_down_goes_on_at_up_without_the_revive_sweep(tmp_path):
    # no sweep may bring the work back here: only what the stopped workers finished or handed back counts
    env = {"DOCPIPE_REVIVE_EVERY_SECONDS": "0", "DOCPIPE_STALL_SECONDS": "3600"}
    env |= {k: v for k, v in os.environ.items() if not k.startswith("DOCPIPE_")}

    def run(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "cli", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, f"docpipe {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
        return proc

    words = "harbour pilot storm rota ferry tide crane berth cargo quay dredger beacon gale anchor hull".split()
    folder = tmp_path / "notes"
    folder.mkdir()
    for i in range(400):
        text = " ".join(words[(i * 7 + j * (i % 5 + 1)) % len(words)] for j in range(30))
        (folder / f"n{i:04d}.txt").write_text(f"Note {i} from berth {i * 37 % 1000}: {text}. Ref {i}-{i * i}.")
    try:
        run("up")
        job_id = json.loads(run("ingest", "notes", "--json").stdout)["id"]
        deadline = time.monotonic() + 120
        while True:  # stop the stack mid-job
            c = json.loads(run("job", job_id, "--json").stdout)["counters"]
            if c["done"] + c["skipped"] >= 20:
                break
            assert time.monotonic() < deadline, c
            time.sleep(0.2)
        run("down")
        assert c["done"] + c["skipped"] < 400, "the job ended before the stack was stopped"
        run("up")
        deadline = time.monotonic() + 300
        while (rec := json.loads(run("job", job_id, "--json").stdout))["state"] not in (
            "succeeded",
            "partial",
            "failed",
        ):
            assert time.monotonic() < deadline, f"the job did not go on after up: {rec['counters']}"
            time.sleep(1)
        assert rec["state"] == "succeeded" and rec["counters"]["total"] == 400 and rec["counters"]["failed"] == 0
        assert rec["counters"]["done"] + rec["counters"]["skipped"] == 400
    finally:
        docpipe(tmp_path, "down")
