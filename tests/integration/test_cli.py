"""The README's main path, through the real `docpipe` command: one `ingest --wait` brings the local stack up
(noida-db, migrations, workers), then search, eval-search, status, a second `up`, and `down`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cli.localstack.processes import pid_alive

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def docpipe(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCPIPE_")}
    proc = subprocess.run(
        [sys.executable, "-m", "cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"docpipe {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_ingest_wait_brings_the_stack_up_then_search_status_down(tmp_path):
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    try:
        rec = json.loads(docpipe(tmp_path, "ingest", "examples/docs", "--wait", "--json").stdout)
        assert rec["state"] == "succeeded"
        assert rec["counters"] | {"chunks": 0} == {
            "total": 6,
            "done": 5,
            "unchanged": 0,
            "skipped": 1,
            "failed": 0,
            "chunks": 0,
        }
        stack = json.loads((tmp_path / ".docpipe" / "stack.json").read_text())
        pids = {name: c["pid"] for name, c in stack["components"].items()}
        assert {"noida-db", "worker-ingest", "worker-gpu"} <= set(pids)

        again = docpipe(tmp_path, "up")
        assert "already up" in again.stderr
        assert {
            n: c["pid"] for n, c in json.loads((tmp_path / ".docpipe" / "stack.json").read_text())["components"].items()
        } == pids
        status = json.loads(docpipe(tmp_path, "status", "--json").stdout)
        assert all(row["alive"] for row in status)

        hits = json.loads(docpipe(tmp_path, "search", "malaria vaccine for children", "--json").stdout)
        assert hits[0]["source"].endswith("vaccine.md")
        bm25 = json.loads(docpipe(tmp_path, "search", "wage deal dock workers", "--mode", "bm25", "--json").stdout)
        assert bm25[0]["source"].endswith("harbour.txt")
        report = json.loads(docpipe(tmp_path, "eval-search", "examples/queries.jsonl", "--tune", "--json").stdout)
        assert report["queries"] == 4 and set(report["modes"]) == {"bm25", "knn", "hybrid"}
        assert report["fusion"] == "rrf w=0.50 c=60" and report["modes"]["hybrid"]["mrr"] >= 0.75
        tuned = report["tuned"]
        assert report["stored"] and tuned["mrr"] >= max(m["mrr"] for m in report["modes"].values())
        again = json.loads(
            docpipe(tmp_path, "eval-search", "examples/queries.jsonl", "--modes", "hybrid", "--json").stdout
        )
        assert again["fusion"] == tuned["label"] and again["modes"]["hybrid"]["mrr"] == tuned["mrr"]  # stored, used

        jobs = json.loads(docpipe(tmp_path, "jobs", "--json").stdout)
        assert [j["id"] for j in jobs] == [rec["id"]]
        detail = json.loads(docpipe(tmp_path, "job", rec["id"][:8], "--json").stdout)
        assert detail["dead_letters"] == []
        stages = {s["stage"]: s for s in detail["stages"]}
        assert list(stages) == ["read", "clean", "dedup", "chunk", "embed", "index"]
        assert all(s["seconds"] > 0 and s["items_in"] > 0 and s["items_out"] > 0 for s in stages.values())
        assert (stages["read"]["items_out"], stages["clean"]["items_out"], stages["dedup"]["items_out"]) == (6, 6, 5)
        assert sum(stages["dedup"]["dropped"].values()) == 1  # the reprint
        assert set(stages["dedup"]["dropped"]) <= {"exact_duplicate", "near_duplicate"}
        chunks = stages["chunk"]["items_out"]
        assert stages["chunk"]["items_in"] == 5 and chunks >= 5
        assert stages["embed"]["items_in"] == stages["index"]["items_out"] == chunks == detail["counters"]["chunks"]

        again = json.loads(docpipe(tmp_path, "ingest", "examples/docs", "--wait", "--json").stdout)
        assert again["counters"]["unchanged"] == 6
        again_stages = json.loads(docpipe(tmp_path, "job", again["id"][:8], "--json").stdout)["stages"]
        assert [s["stage"] for s in again_stages] == ["read", "clean", "dedup"]  # nothing new to chunk or index
        assert again_stages[2]["dropped"] == {"unchanged": 6}

        refused = docpipe(tmp_path, "ingest", "no/such/folder", check=False)
        assert refused.returncode == 2 and "no such file or folder" in refused.stderr
    finally:
        docpipe(tmp_path, "down", check=False)
    assert not any(pid_alive(p) for p in pids.values())
    assert not (tmp_path / ".docpipe" / "stack.json").exists()
