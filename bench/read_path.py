"""The read task's own cost per file: the ingest queue's body (claim, delivery count, read, clean, dedup, language,
chunk, SQL rows, stage accounts) over N BBC News articles, in one process against a fresh SQLite database, for
the code of a baseline commit and of the working tree, alternately, in the same run.

Every document is new (a fresh database each time), so each one takes the whole path: nothing is unchanged and
the articles of the sample are distinct. Elasticsearch is not needed: a new document deletes nothing there. The
encoder is not loaded (the read queue only tokenises). Wall and CPU seconds of the timed files, after a warm-up of
20 other articles in the same process (tokenizer, language models and SQL statements loaded).

    python bench/read_path.py [--n 300] [--reps 3] [--baseline feb2fb6] [--label TEXT]
                              [--out bench/results/read_path.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 20


def child(tree: Path, folder: Path, warm: Path) -> dict:
    """In a process of its own, with `tree` first on the path: the read task body over `warm`, then `folder`."""
    sys.path.insert(0, str(tree))
    from migrations.runner import upgrade
    from pipeline.formats import iter_files
    from pipeline.jobs import ownership
    from pipeline.store import repo
    from pipeline.store.db import session_scope
    from workers import runtime
    from workers.tasks_ingest import _read_claimed

    upgrade(runtime.sql_url())

    def read(path: Path) -> tuple[int, float, float]:
        with session_scope(runtime.sql_url()) as s:
            job = repo.create_job(s, "bench", [str(path)])
            repo.mark_running(s, job)
            repo.add_job_files(s, job, [str(p) for p in iter_files([path])])
            files, job_id = [f.id for f in repo.pending_files(s, job.id)], job.id
        taken = runtime.claim_files(job_id, files, ownership.Step.READ)
        wall, cpu = time.perf_counter(), time.process_time()
        _read_claimed(job_id, taken, count=True)
        return len(taken), time.perf_counter() - wall, time.process_time() - cpu

    read(warm)
    n, wall, cpu = read(folder)
    return {"files": n, "wall_s": wall, "cpu_s": cpu}


def run_child(tree: Path, folder: Path, warm: Path, es_url: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="docpipe-readpath-") as data:
        env = {**os.environ, "DOCPIPE_DATA_DIR": data, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        # the read task looks up the live index version (v1, created here under a prefix of its own)
        env.update(DOCPIPE_ELASTICSEARCH_URL=es_url, DOCPIPE_INDEX_PREFIX=f"readpath{uuid.uuid4().hex[:8]}")
        env.pop("DOCPIPE_DATABASE_URL", None)
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(tree), str(folder), str(warm)],
            env=env,
            cwd=tree,
            capture_output=True,
            text=True,
            check=False,
        )
    if out.returncode != 0:
        raise SystemExit(f"the read of {tree} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        print(json.dumps(child(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="articles timed (a seeded sample of the 2,225)")
    ap.add_argument("--reps", type=int, default=3, help="runs of each tree, alternating")
    ap.add_argument("--baseline", default="feb2fb6", help="the commit whose read task is the baseline")
    ap.add_argument("--label", default="")
    ap.add_argument("--out", default=str(ROOT / "bench/results/read_path.jsonl"))
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    from bench.bbc import bbc_articles, sample
    from cli.localstack.processes import start_noida

    work = Path(tempfile.mkdtemp(prefix="docpipe-readpath-"))
    picked = sample(bbc_articles(), args.n + WARMUP, seed=5)
    for name, part in (("timed", picked[WARMUP:]), ("warm", picked[:WARMUP])):
        (work / name).mkdir()
        for i, article in enumerate(part):
            (work / name / f"{i:05d}.txt").write_text(article["text"], encoding="utf-8")
    base = work / "baseline"
    subprocess.run(["git", "worktree", "add", "-f", "--detach", str(base), args.baseline], cwd=ROOT, check=True)
    runs: dict[str, list[dict]] = {"baseline": [], "head": []}
    noida = start_noida(work / "noida")
    try:
        for _ in range(args.reps):
            for name, tree in (("baseline", base), ("head", ROOT)):
                runs[name].append(run_child(tree, work / "timed", work / "warm", f"http://127.0.0.1:{noida.es_port}"))
    finally:
        noida.stop()
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
        subprocess.run(["rm", "-rf", str(work)], check=False)

    def ms(name: str, key: str) -> float:
        return statistics.median(1000 * r[key] / r["files"] for r in runs[name])

    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    result = {
        "bench": "read_path",
        "label": args.label,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {_cpu_model()}",
        "load": [round(x, 2) for x in os.getloadavg()],
        "files": args.n,
        "reps": args.reps,
        "baseline": args.baseline,
        "head": head.strip() + ("+dirty" if _dirty() else ""),
        "baseline_ms_per_file": round(ms("baseline", "wall_s"), 2),
        "head_ms_per_file": round(ms("head", "wall_s"), 2),
        "baseline_cpu_ms_per_file": round(ms("baseline", "cpu_s"), 2),
        "head_cpu_ms_per_file": round(ms("head", "cpu_s"), 2),
        "speedup": round(ms("baseline", "wall_s") / ms("head", "wall_s"), 2),
        "cpu_speedup": round(ms("baseline", "cpu_s") / ms("head", "cpu_s"), 2),
    }
    line = json.dumps(result)
    print(line)
    with open(args.out, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown CPU"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")


def _dirty() -> bool:
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True)
    return bool(status.stdout.strip())


if __name__ == "__main__":
    main()
