"""Retrieval-augmented fine-tuning on the BBC News set: none vs concat vs fusion on the same split.

    python bench/train.py [--examples 300] [--extra-docs 100] [--epochs 1] [--max-length 128]
                          [--neighbours 2] [--batch-size 8] [--lr 1e-4] [--json]

In a scratch folder: `docpipe ingest` of the articles through the real pipeline (noida-db, SQLite, Celery
workers; the corpus is every example's own article plus --extra-docs others), then, in this process, one
training job's steps: the split, the leak-free neighbours (retrieved once, shared by concat and fusion,
exactly as one `docpipe train` job computes them), and a run of each mode on that split. Prints training
examples/s, accuracy and macro-F1 per mode. Each example's own article and its near-duplicate cluster are
kept out of its neighbours by the same rules as `docpipe train --id-col`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.bbc import bbc_articles, sample  # noqa: E402


def docpipe(env: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"docpipe {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def train_modes(data_dir: Path, csv: Path, args) -> dict:
    from pipeline.config import Settings
    from pipeline.infer.embedder import get_engine_encoder
    from pipeline.reindex import search_target
    from pipeline.services import elasticsearch_client, endpoints
    from pipeline.store.db import session_scope
    from pipeline.train.job import TrainingJob, TrainRequest

    s = Settings(data_dir=data_dir)
    es = elasticsearch_client(s)
    request = TrainRequest(
        data=str(csv),
        text_col="text",
        label_col="label",
        id_col="id",
        augment="concat",
        neighbours=args.neighbours,
        epochs=args.epochs,
        max_length=args.max_length,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=s.train.seed,
    )
    work = TrainingJob(request, "default", data_dir / "models" / "bench", s.encoder_path)
    work.load()
    t = time.perf_counter()
    with session_scope(endpoints(s).sql_url) as session:
        index, model_path, _ = search_target(session, s.index_prefix, s.encoder_path)
        encoder = get_engine_encoder(model_path)
        work.find_neighbours(
            session,
            es,
            index,
            encoder,
            {"threshold": s.dedup.threshold, "num_perm": s.dedup.minhash_perms, "shingle_words": s.dedup.shingle_words},
            s.train.allow_undated_neighbours,
        )
    work.load_vectors(es, index, encoder.dims)
    neighbour_seconds = time.perf_counter() - t

    def progress(kind: str, info: dict) -> None:
        if kind == "eval" or (kind == "step" and info["step"] % 10 == 0):
            print(f"    {kind} {json.dumps(info)}", file=sys.stderr, flush=True)

    results = {}
    for mode in ("none", "concat", "fusion"):
        print(f"  training {mode}", file=sys.stderr, flush=True)
        results[mode] = work.run(mode, progress)
    return {
        "results": results,
        "params": work.params(),
        "neighbour_seconds": round(neighbour_seconds, 1),
        "index": index,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=300, help="labelled articles (train + held-out)")
    ap.add_argument("--extra-docs", type=int, default=100, help="more articles indexed as neighbour corpus")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--neighbours", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    articles = sample(bbc_articles(), args.examples + args.extra_docs, seed=7)
    examples = articles[: args.examples]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data_dir = tmp / ".docpipe"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCPIPE_")}
        env.update(DOCPIPE_DATA_DIR=str(data_dir), PYTHONPATH=str(ROOT))
        corpus = tmp / "bbc"
        corpus.mkdir()
        for a in articles:
            (corpus / a["id"].replace("/", "-")).write_text(a["text"])
        csv = tmp / "train.csv"
        pd.DataFrame(
            [{"id": a["id"].replace("/", "-"), "text": a["text"], "label": a["label"]} for a in examples]
        ).to_csv(csv, index=False)
        try:
            t = time.perf_counter()
            ingest = json.loads(docpipe(env, tmp, "ingest", str(corpus), "--wait", "--json").stdout)
            ingest_seconds = time.perf_counter() - t
            print(f"  ingested {ingest['counters']} in {ingest_seconds:.0f}s", file=sys.stderr, flush=True)
            os.environ["DOCPIPE_DATA_DIR"] = str(data_dir)
            trained = train_modes(data_dir, csv, args)
        finally:
            subprocess.run([sys.executable, "-m", "cli", "down"], cwd=tmp, env=env, capture_output=True, check=False)
    results, params = trained["results"], trained["params"]
    result = {
        "train_examples": params["train_examples"],
        "eval_examples": params["eval_examples"],
        "indexed_articles": len(articles),
        "ingest": ingest["counters"],
        "epochs": args.epochs,
        "max_length": args.max_length,
        "neighbours": args.neighbours,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "neighbour_count": params["neighbour_count"],
        "neighbour_seconds": trained["neighbour_seconds"],
        "ingest_seconds": round(ingest_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "modes": {
            mode: {
                "accuracy": r["metrics"]["accuracy"],
                "macro_f1": r["metrics"]["macro_f1"],
                "train_examples_per_s": r["examples_per_s"],
                "steps": r["steps"],
            }
            for mode, r in results.items()
        },
    }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"BBC News: {result['train_examples']} training / {result['eval_examples']} held-out articles "
        f"(stratified), {len(articles)} indexed; {args.epochs:g} epoch, max length {args.max_length}, "
        f"{args.neighbours} neighbours, batch {args.batch_size}, lr {args.lr:g}"
    )
    for mode, m in result["modes"].items():
        print(
            f"  {mode:<7} accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  "
            f"{m['train_examples_per_s']} training examples/s"
        )
    print(
        f"  ingest {result['ingest_seconds']}s, neighbours {result['neighbour_seconds']}s, "
        f"total {result['total_seconds']}s"
    )


if __name__ == "__main__":
    main()
