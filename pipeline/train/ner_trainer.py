"""One token-level fine-tuning run: the sequence trainer's optimiser, schedule, checkpoints and resume
(pipeline/train/trainer.py), with a tag per word instead of a label per text.

Training examples are windows (a long sentence gives several); the loss reads each word's first
sub-token only. Evaluation tags the held-out sentences through the inference engine, merges windows
back into words and scores entities with seqeval; early stopping follows the entity-level micro F1.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.devices import resolve_device
from pipeline.infer.artefact import ArtefactConfig
from pipeline.infer.engine import InferenceEngine, collate, to_device
from pipeline.infer.ner_inputs import IGNORE, TagLayout, encode
from pipeline.infer.ner_model import NER_KIND, TokenTagger, best_tags, predict_words
from pipeline.train.ner_metrics import entity_report
from pipeline.train.trainer import Optimisation, TrainConfig, load_base, seed_everything


@dataclass
class NerConfig(TrainConfig):
    stride: int = 32

    def layout(self) -> TagLayout:
        return TagLayout(self.max_length, self.stride, self.neighbours, self.text_share)

    def artefact(self) -> ArtefactConfig:
        config = super().artefact()
        config.extra = {"kind": NER_KIND, "stride": self.stride}
        return config


@dataclass
class NerSplit:
    texts: list[str]
    words: list[list[tuple[int, int]]]
    tags: list[list[str]]
    passages: list[list[str]] | None = None


def build_tagger(cfg: NerConfig):
    encoder, tokenizer = load_base(cfg, fast_tokenizer_for="NER")
    return TokenTagger(encoder, len(cfg.labels)), tokenizer


def evaluate_tags(model, tokenizer, cfg: NerConfig, held: NerSplit, device) -> dict:
    model.eval()
    try:
        budget = max(cfg.eval_token_budget, cfg.max_length)
        engine = InferenceEngine(best_tags(model, cfg.max_length), tokenizer.pad_token_id or 0, device, budget)
        found = predict_words(engine, tokenizer, cfg.layout(), held.texts, held.words, held.passages)
    finally:
        model.train()
    predicted = [[cfg.labels[t] for t, _ in row] for row in found]
    return entity_report(held.tags, predicted)


def _padded_labels(labels: list[np.ndarray], rows, width: int) -> np.ndarray:
    out = np.full((len(rows), width), IGNORE, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(labels[r])] = labels[r]
    return out


def train_ner_run(
    cfg: NerConfig, train: NerSplit, held: NerSplit, run_dir: Path, progress: Callable[[str, dict], None] | None = None
):
    """Train (or resume) one run in run_dir; returns (tagger with its best weights, tokenizer, result)."""
    import torch

    progress = progress or (lambda kind, info: None)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    model, tokenizer = build_tagger(cfg)
    model.to(device).train()
    pad_id = tokenizer.pad_token_id or 0
    index = {tag: i for i, tag in enumerate(cfg.labels)}
    tagged = encode(
        tokenizer, train.texts, train.words, cfg.layout(), train.passages, [[index[t] for t in s] for s in train.tags]
    )

    n = len(tagged.requests)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    run = Optimisation(model, optimizer, cfg, n, device, run_dir, progress)
    state, bs = run.state, run.batch_size

    seen, train_seconds = 0, 0.0
    for epoch in range(state.epoch, run.epochs):
        order = np.random.default_rng(cfg.seed + epoch).permutation(n)  # the same shuffle after a resume
        start, end = run.bounds(epoch)
        losses: list[float] = []
        began = time.perf_counter()
        for micro in range(max(state.micro, start), end):
            rows = order[(micro - start) * bs : (micro - start + 1) * bs]
            batch = to_device(collate(tagged.requests, rows, pad_id), device)
            labels = torch.as_tensor(_padded_labels(tagged.labels, rows, batch["input_ids"].shape[1]), device=device)
            with run.autocast():
                logits = model(**batch)
                loss = torch.nn.functional.cross_entropy(
                    logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE
                )
                loss = loss / run.accum
            seen += len(rows)
            run.micro_step(loss, micro, end, epoch, losses)
        train_seconds += time.perf_counter() - began
        metrics = evaluate_tags(model, tokenizer, cfg, held, device)
        entry = {
            "epoch": epoch + 1,
            "step": state.step,
            "loss": round(float(np.mean(losses)), 4) if losses else None,
            "f1": metrics["f1"],
            "macro_f1": metrics["macro_f1"],
        }
        if run.end_epoch(epoch, entry, metrics["f1"]):
            break

    run.load_best()
    metrics = evaluate_tags(model, tokenizer, cfg, held, device)
    result = {
        "augment": cfg.augment,
        "metrics": metrics,
        "best_epoch": state.best_epoch,
        "history": state.history,
        "steps": state.step,
        "total_steps": run.total_steps,
        "train_examples": len(train.texts),
        "train_windows": n,
        "eval_examples": len(held.texts),
        "resumed_from_step": state.resumed_from_step,
        "examples_per_s": round(seen / train_seconds, 2) if train_seconds and seen else None,
    }
    return model, tokenizer, result
