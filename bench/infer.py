"""Inference throughput: docpipe's batched engine against a naive transformers
`pipeline("text-classification")` (its defaults: one text per call), same model, same texts, same run.

    python bench/infer.py [--texts titles|paragraphs|articles] [--n 400] [--max-length 256] [--budget 0]
                          [--rounds 3] [--model FOLDER] [--device auto] [--peak-tflops 989]
                          [--engine-only] [--compile]

Prints sequences/s, tokens/s, padding waste, the ratio, and the agreement of the two label sets. The
engine's figures are end to end (tokenising included, as for the pipeline) and, as `forward`, for the
packed batches alone. On CUDA it also prints model FLOP utilisation: tokens/s x 22 MFLOP/token
(all-MiniLM-L6-v2 forward) over the bf16 peak. --engine-only skips the slow baseline, for large --n.

On the CPU it also measures, in the same run, the ceiling of any engine that computes this model exactly
in fp32: tokens/s of the encoder's linear layers alone (each once per token, on a block of tokens as
large as a batch), which carry 90-99% of its FLOPs (less as texts grow longer). `ceiling_ratio` is that
rate over the naive pipeline's: no fp32 engine, however it batches, can be faster than that against
this baseline.

--compile adds the engine with its model compiled (as DOCPIPE_INFER_COMPILE runs it) to the same rounds,
with its own ratio and its speed-up over the eager engine's forward pass.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")  # as in the gpu worker (solo pool, never forks)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bbc import bbc_articles, sample

FLOP_PER_TOKEN = 22e6


def texts_for(kind: str, n: int) -> list[str]:
    articles = sample(bbc_articles(), 10_000, seed=1)
    if kind == "articles":
        pool = [a["text"] for a in articles]
    elif kind == "titles":
        pool = [a["title"] for a in articles]
    else:
        pool = [p.strip() for a in articles for p in a["text"].split("\n") if len(p.split()) >= 5]
    return [pool[i % len(pool)] for i in range(n)]  # the set repeats for an --n beyond it


def default_model(folder: Path) -> Path:
    """The base encoder with a fresh 5-class sequence-classification head, saved as a Hugging Face folder
    that both sides load: throughput does not depend on what the head learnt."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pipeline.config import default_encoder_path

    torch.manual_seed(0)
    base = default_encoder_path()
    labels = ["business", "entertainment", "politics", "sport", "tech"]
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=5,
        local_files_only=True,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base, local_files_only=True).save_pretrained(folder)
    return folder


def engine_runner(
    folder: Path, texts: list[str], device: str, budget: int, max_length: int, compile_model: bool = False
):
    """The same Hugging Face model behind docpipe's engine (what the gpu worker does with any model)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pipeline.devices import resolve_device
    from pipeline.infer.engine import InferenceEngine, default_token_budget, for_inference
    from pipeline.infer.inputs import text_requests

    dev = resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = for_inference(
        AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True), dev, compile_model
    )
    engine = InferenceEngine(
        lambda **t: model(**t).logits,
        tokenizer.pad_token_id,
        dev,
        max(budget or default_token_budget(dev), max_length),
        autocast=False,
    )
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    # warm-up: first-call allocations; a compiled model compiles for the shapes it will see
    engine.run(text_requests(tokenizer, texts if compile_model else texts[:16], max_length))

    def run() -> dict:
        started = time.perf_counter()
        # tokenising is part of the work, as it is for the pipeline
        logits = engine.run(text_requests(tokenizer, texts, max_length))
        if dev.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        report = engine.last_report
        return {
            "seconds": seconds,
            "forward_seconds": report.seconds,
            "sequences": len(texts),
            "tokens": report.real_tokens,
            "padding_waste": report.padding_waste,
            "batches": report.batches,
            "labels": [labels[i] for i in logits.argmax(1)],
            "device": str(dev),
        }

    return run


def ceiling_runner(folder: Path, tokens: int):
    """Times the encoder's linear layers alone, fp32 on the CPU, on a `tokens`-row block; each call returns
    tokens/s, an upper bound for any exact fp32 forward pass (attention, norms, activations and the head
    only add to it)."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True).eval()
    # the encoder's layers run once per token; pooler and head run once per sequence and are left out
    encoder = getattr(model.base_model, "encoder", model.base_model)
    layers = [m for m in encoder.modules() if isinstance(m, torch.nn.Linear)]
    x = {n: torch.randn(tokens, n) for n in {m.in_features for m in layers}}

    def run() -> float:
        with torch.inference_mode():
            started = time.perf_counter()
            for m in layers:
                F.linear(x[m.in_features], m.weight, m.bias)
            return tokens / (time.perf_counter() - started)

    run()  # warms the allocator up
    return run


def naive_runner(folder: Path, texts: list[str], device: str, max_length: int):
    import torch
    from transformers import pipeline

    dev = 0 if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()) else -1
    clf = pipeline("text-classification", model=str(folder), tokenizer=str(folder), device=dev)
    # truncation is the one argument added: without it texts over 512 tokens make the model fail
    clf(texts[:16], truncation=True, max_length=max_length)
    tokens = sum(len(ids) for ids in clf.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"])

    def run() -> dict:
        started = time.perf_counter()
        out = clf(texts, truncation=True, max_length=max_length)
        if dev >= 0:
            torch.cuda.synchronize()
        return {
            "seconds": time.perf_counter() - started,
            "sequences": len(texts),
            "tokens": tokens,
            "padding_waste": 0.0,
            "labels": [o["label"] for o in out],
        }

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--texts",
        choices=["titles", "paragraphs", "articles"],
        default="paragraphs",
        help="headlines (~12 tokens), paragraphs (~90), or whole articles (cut at --max-length)",
    )
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--budget", type=int, default=0, help="engine token budget per batch (0: the device's default)")
    ap.add_argument(
        "--model",
        type=Path,
        help="a Hugging Face sequence-classification folder (default: all-MiniLM-L6-v2 with a fresh head)",
    )
    ap.add_argument("--device", default="auto")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="GPU bf16 dense peak (H100 SXM: 989)")
    ap.add_argument("--rounds", type=int, default=3, help="timed runs of each, alternating; the best counts")
    ap.add_argument("--engine-only", action="store_true", help="time the engine alone (no baseline)")
    ap.add_argument(
        "--compile",
        action="store_true",
        help="also time the engine with the model compiled, as DOCPIPE_INFER_COMPILE runs it",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    from pipeline.devices import resolve_device
    from pipeline.infer.engine import default_token_budget

    texts = texts_for(args.texts, args.n)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.model or default_model(Path(tmp) / "model")
        runners = {"engine": engine_runner(folder, texts, args.device, args.budget, args.max_length)}
        if args.compile:
            runners["compiled"] = engine_runner(folder, texts, args.device, args.budget, args.max_length, True)
        if not args.engine_only:
            runners["naive"] = naive_runner(folder, texts, args.device, args.max_length)
        cpu = resolve_device(args.device).type == "cpu"
        block = max(args.budget or default_token_budget(torch.device("cpu")), args.max_length)
        ceiling = ceiling_runner(folder, block) if cpu else None
        best: dict[str, dict] = {}
        ceiling_best = 0.0
        for _ in range(args.rounds):  # alternate, keep each one's fastest: a shared machine is noisy
            for name, run in runners.items():
                r = run()
                if name not in best or r["seconds"] < best[name]["seconds"]:
                    best[name] = r
            if ceiling is not None:
                ceiling_best = max([ceiling_best] + [ceiling() for _ in range(5)])
    engine = best["engine"]
    result = {
        "texts": args.texts,
        "n": len(texts),
        "max_length": args.max_length,
        "budget": args.budget,
        "rounds": args.rounds,
        "device": engine["device"],
        "threads": torch.get_num_threads(),
    }
    timed = [("engine", engine, engine["seconds"]), ("forward", engine, engine["forward_seconds"])]
    if "compiled" in best:
        compiled = best["compiled"]
        timed += [
            ("compiled_engine", compiled, compiled["seconds"]),
            ("compiled_forward", compiled, compiled["forward_seconds"]),
        ]
    if "naive" in best:
        timed.append(("naive_pipeline", best["naive"], best["naive"]["seconds"]))
    for name, r, seconds in timed:
        result[name] = {
            "sequences_per_s": round(r["sequences"] / seconds, 2),
            "tokens_per_s": round(r["tokens"] / seconds, 1),
            "padding_waste": round(r["padding_waste"], 4),
            "seconds": round(seconds, 3),
        }
    result["engine"]["batches"] = engine["batches"]
    if "compiled" in best:
        result["compile_speedup"] = round(
            result["compiled_forward"]["tokens_per_s"] / result["forward"]["tokens_per_s"], 2
        )
    if "naive" in best:
        naive = best["naive"]
        for name, key in (("engine", "ratio"), ("compiled_engine", "compiled_ratio")):
            if name in result:
                result[key] = round(result[name]["sequences_per_s"] / result["naive_pipeline"]["sequences_per_s"], 2)
        for name, key in (("engine", "label_agreement"), ("compiled", "compiled_label_agreement")):
            if name in best:
                same = sum(a == b for a, b in zip(best[name]["labels"], naive["labels"]))
                result[key] = round(same / len(texts), 4)
    if ceiling is not None:
        result["fp32_linear_ceiling"] = {
            "tokens_per_s": round(ceiling_best, 1),
            "forward_share": round(result["forward"]["tokens_per_s"] / ceiling_best, 3),
        }
        if "compiled_forward" in result:
            share = result["compiled_forward"]["tokens_per_s"] / ceiling_best
            result["fp32_linear_ceiling"]["compiled_forward_share"] = round(share, 3)
        if "naive" in best:
            result["ceiling_ratio"] = round(ceiling_best / result["naive_pipeline"]["tokens_per_s"], 2)
    if engine["device"].startswith("cuda"):
        peak = args.peak_tflops * 1e12
        for name, _, _ in timed:
            result[name]["mfu"] = round(result[name]["tokens_per_s"] * FLOP_PER_TOKEN / peak, 4)
        result["gpu"] = torch.cuda.get_device_name()
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{result['n']} BBC {args.texts}, max length {args.max_length}, device {result['device']}, "
        f"{result['threads']} threads"
    )
    for name, _, _ in timed:
        r = result[name]
        mfu = f"  MFU {r['mfu']:.1%}" if "mfu" in r else ""
        print(
            f"  {name:<17} {r['sequences_per_s']:>9.1f} seq/s {r['tokens_per_s']:>10.0f} tok/s  "
            f"padding waste {r['padding_waste']:.1%}{mfu}"
        )
    if "ratio" in result:
        print(f"  ratio {result['ratio']:.2f}x   label agreement {result['label_agreement']:.1%}")
    if "compiled_ratio" in result:
        print(
            f"  compiled: ratio {result['compiled_ratio']:.2f}x   label agreement "
            f"{result['compiled_label_agreement']:.1%}"
        )
    if "compile_speedup" in result:
        print(f"  compiled forward / eager forward: {result['compile_speedup']:.2f}x")
    if ceiling is not None:
        c = result["fp32_linear_ceiling"]
        print(
            f"  fp32 ceiling      {c['tokens_per_s']:>27.0f} tok/s  (linear layers alone; forward reaches "
            f"{c['forward_share']:.0%} of it"
            + (f", compiled {c['compiled_forward_share']:.0%}" if "compiled_forward_share" in c else "")
            + ")"
        )
        if "ceiling_ratio" in result:
            print(f"  the most any exact fp32 engine could reach against this baseline: {result['ceiling_ratio']:.2f}x")


if __name__ == "__main__":
    main()
