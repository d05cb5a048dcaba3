"""One token-level fine-tuning run: the sequence trainer's optimiser, schedule, checkpoints and resume
(pipeline/train/trainer.py), with a tag per word instead of a label per text.

Training examples are windows (a long sentence gives several); the loss reads each word's first
sub-token only. Evaluation tags the held-out sentences through the inference engine, merges windows
back into words and scores entities with seqeval; early stopping follows the entity-level micro F1.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.devices import resolve_device
from pipeline.errors import ConfigError
from pipeline.infer.artefact import ArtefactConfig
from pipeline.infer.engine import InferenceEngine, autocast_dtype, collate, to_device
from pipeline.infer.ner_inputs import IGNORE, TagLayout, encode
from pipeline.infer.ner_model import NER_KIND, TokenTagger, best_tags, predict_words
from pipeline.train.ner_metrics import entity_report
from pipeline.train.trainer import (
    BEST,
    CHECKPOINT,
    RunState,
    TrainConfig,
    _rng_state,
    _save,
    _set_rng_state,
    seed_everything,
)


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
    from transformers import AutoModel, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(cfg.base_model, local_files_only=True)
        encoder = AutoModel.from_pretrained(cfg.base_model, local_files_only=True)
    except Exception as exc:  # transformers raises many types for one cause: an unusable folder
        raise ConfigError(f"base model {cfg.base_model} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(f"base model {cfg.base_model} has no fast tokenizer; NER needs its character offsets")
    max_positions = getattr(encoder.config, "max_position_embeddings", None)
    if max_positions and cfg.max_length > max_positions:
        raise ConfigError(f"max length {cfg.max_length} exceeds what {cfg.base_model} accepts ({max_positions})")
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
    from transformers import get_linear_schedule_with_warmup

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

    n, bs, accum = len(tagged.requests), cfg.batch_size, max(cfg.grad_accum, 1)
    per_epoch = math.ceil(n / bs)
    total_micro = max(1, math.ceil(cfg.epochs * per_epoch))
    epochs = math.ceil(total_micro / per_epoch)
    total_steps = sum(math.ceil((min((e + 1) * per_epoch, total_micro) - e * per_epoch) / accum) for e in range(epochs))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(cfg.warmup_ratio * total_steps), total_steps)
    amp = autocast_dtype(device)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None

    state = RunState()
    ckpt_path = run_dir / CHECKPOINT
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        _set_rng_state(ckpt["rng"])
        state = RunState(**ckpt["state"])
        state.resumed_from_step = state.step
        progress("resumed", {"step": state.step, "total_steps": total_steps})

    def checkpoint() -> None:
        _save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler else None,
                "rng": _rng_state(),
                "state": state.__dict__,
            },
            ckpt_path,
        )

    seen, train_seconds = 0, 0.0
    for epoch in range(state.epoch, epochs):
        order = np.random.default_rng(cfg.seed + epoch).permutation(n)  # the same shuffle after a resume
        start, end = epoch * per_epoch, min((epoch + 1) * per_epoch, total_micro)
        losses: list[float] = []
        began = time.perf_counter()
        for micro in range(max(state.micro, start), end):
            rows = order[(micro - start) * bs : (micro - start + 1) * bs]
            batch = to_device(collate(tagged.requests, rows, pad_id), device)
            labels = torch.as_tensor(_padded_labels(tagged.labels, rows, batch["input_ids"].shape[1]), device=device)
            with torch.autocast(device.type, dtype=amp) if amp is not None else nullcontext():
                logits = model(**batch)
                loss = torch.nn.functional.cross_entropy(
                    logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE
                )
                loss = loss / accum
            (scaler.scale(loss) if scaler else loss).backward()
            losses.append(loss.item() * accum)
            seen += len(rows)
            state.micro = micro + 1
            if state.micro % accum and state.micro != end:
                continue
            if scaler:
                scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            if state.step % cfg.checkpoint_steps == 0:
                checkpoint()
            progress(
                "step",
                {
                    "epoch": epoch + 1,
                    "step": state.step,
                    "total_steps": total_steps,
                    "loss": round(float(np.mean(losses[-accum:])), 4),
                    "lr": scheduler.get_last_lr()[0],
                    "checkpointed": state.step % cfg.checkpoint_steps == 0,
                },
            )
        train_seconds += time.perf_counter() - began
        metrics = evaluate_tags(model, tokenizer, cfg, held, device)
        entry = {
            "epoch": epoch + 1,
            "step": state.step,
            "loss": round(float(np.mean(losses)), 4) if losses else None,
            "f1": metrics["f1"],
            "macro_f1": metrics["macro_f1"],
        }
        state.history.append(entry)
        if state.best_f1 is None or metrics["f1"] > state.best_f1:
            state.best_f1, state.best_epoch, state.bad_epochs = metrics["f1"], epoch + 1, 0
            _save(model.state_dict(), run_dir / BEST)
        else:
            state.bad_epochs += 1
        state.epoch = epoch + 1
        checkpoint()
        progress("eval", {**entry, "total_steps": total_steps})
        if state.bad_epochs >= cfg.patience:
            break

    model.load_state_dict(torch.load(run_dir / BEST, map_location="cpu", weights_only=True))
    metrics = evaluate_tags(model, tokenizer, cfg, held, device)
    result = {
        "augment": cfg.augment,
        "metrics": metrics,
        "best_epoch": state.best_epoch,
        "history": state.history,
        "steps": state.step,
        "total_steps": total_steps,
        "train_examples": len(train.texts),
        "train_windows": n,
        "eval_examples": len(held.texts),
        "resumed_from_step": state.resumed_from_step,
        "examples_per_s": round(seen / train_seconds, 2) if train_seconds and seen else None,
    }
    return model, tokenizer, result
