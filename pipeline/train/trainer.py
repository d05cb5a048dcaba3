"""One fine-tuning run: AdamW with warmup and linear decay, gradient accumulation, mixed precision on
GPU, evaluation each epoch, early stopping on macro-F1, and checkpoints that make a run resumable.

A run resumed from its checkpoint continues exactly where it stopped: model, optimiser, scheduler,
RNG states and the position inside the epoch's (seeded) shuffle are all restored.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.config import TrainSettings, defaults
from pipeline.devices import resolve_device
from pipeline.errors import ConfigError
from pipeline.infer.artefact import ArtefactConfig
from pipeline.infer.engine import InferenceEngine, Request, autocast_dtype, collate, to_device
from pipeline.infer.inputs import ConcatLayout, concat_requests, text_requests
from pipeline.train.metrics import classification_report

CHECKPOINT, BEST = "checkpoint.pt", "best.pt"
TRAIN_DEFAULTS = defaults(TrainSettings)


class Cancelled(Exception):
    """Raised by a progress callback to stop a run (the job was cancelled)."""


@dataclass
class TrainConfig:
    base_model: str
    augment: str
    labels: list[str]
    max_length: int = TRAIN_DEFAULTS.max_length
    neighbours: int = 0  # passages per example; 0 with augment "none"
    text_share: float = 0.5
    neighbour_dims: int | None = None
    epochs: float = TRAIN_DEFAULTS.epochs
    batch_size: int = TRAIN_DEFAULTS.batch_size
    grad_accum: int = TRAIN_DEFAULTS.grad_accum
    lr: float = TRAIN_DEFAULTS.lr
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    patience: int = TRAIN_DEFAULTS.patience
    seed: int = TRAIN_DEFAULTS.seed
    checkpoint_steps: int = TRAIN_DEFAULTS.checkpoint_steps
    device: str = "auto"
    eval_token_budget: int = 8192

    def artefact(self) -> ArtefactConfig:
        return ArtefactConfig(
            labels=self.labels,
            augment=self.augment,
            neighbours=self.neighbours,
            max_length=self.max_length,
            text_share=self.text_share,
            neighbour_dims=self.neighbour_dims,
            base_model=self.base_model,
        )


@dataclass
class Split:
    """Examples of one side of the split, with what the run's augmentation reads."""

    texts: list[str]
    targets: np.ndarray
    passages: list[list[str]] | None = None
    vectors: np.ndarray | None = None  # fusion: (n, k, dims)
    mask: np.ndarray | None = None  # fusion: (n, k)


@dataclass
class RunState:
    micro: int = 0  # micro-batches done, over the whole run
    step: int = 0  # optimiser steps done
    epoch: int = 0  # epochs fully done (evaluated)
    best_f1: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    history: list[dict] = field(default_factory=list)
    resumed_from_step: int | None = None


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(cfg: TrainConfig):
    """(model, tokenizer) freshly initialised from the base folder; ConfigError when it cannot be used."""
    from transformers import AutoModel, AutoTokenizer

    from pipeline.infer.classifier_model import Classifier

    try:
        tokenizer = AutoTokenizer.from_pretrained(cfg.base_model, local_files_only=True)
        encoder = AutoModel.from_pretrained(cfg.base_model, local_files_only=True)
    except Exception as exc:  # transformers raises many types for one cause: an unusable folder
        raise ConfigError(f"base model {cfg.base_model} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    max_positions = getattr(encoder.config, "max_position_embeddings", None)
    if max_positions and cfg.max_length > max_positions:
        raise ConfigError(f"max length {cfg.max_length} exceeds what {cfg.base_model} accepts ({max_positions})")
    model = Classifier(encoder, len(cfg.labels), int(cfg.neighbour_dims or 1) if cfg.augment == "fusion" else None)
    return model, tokenizer


def encode(tokenizer, cfg: TrainConfig, split: Split) -> tuple[list[Request], dict | None]:
    if cfg.augment == "concat":
        layout = ConcatLayout(cfg.max_length, cfg.neighbours, cfg.text_share)
        return concat_requests(tokenizer, split.texts, split.passages or [[] for _ in split.texts], layout), None
    requests = text_requests(tokenizer, split.texts, cfg.max_length)
    if cfg.augment == "fusion":
        if split.vectors is None:
            raise ValueError("fusion training needs the split's neighbour vectors")
        return requests, {"neighbours": split.vectors.astype(np.float32), "neighbour_mask": split.mask}
    return requests, None


def evaluate(
    model,
    cfg: TrainConfig,
    requests,
    extras,
    targets,
    pad_id: int,
    device,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[dict, np.ndarray]:
    model.eval()
    try:
        engine = InferenceEngine(model, pad_id, device, max(cfg.eval_token_budget, cfg.max_length))
        logits = engine.run(requests, extras, on_batch)
    finally:
        model.train()
    return classification_report(targets, logits.argmax(axis=1), cfg.labels), logits


def _save(obj, path: Path) -> None:
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a kill mid-write leaves the previous checkpoint intact


def _rng_state() -> dict:
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def train_run(
    cfg: TrainConfig, train: Split, held: Split, run_dir: Path, progress: Callable[[str, dict], None] | None = None
):
    """Train (or resume) one run in run_dir; returns (model with its best weights, tokenizer, result)."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    progress = progress or (lambda kind, info: None)

    def heartbeat(rows: int) -> None:
        progress("heartbeat", {"evaluated": rows})

    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    model, tokenizer = build_model(cfg)
    model.to(device).train()
    pad_id = tokenizer.pad_token_id or 0
    train_req, train_extra = encode(tokenizer, cfg, train)
    held_req, held_extra = encode(tokenizer, cfg, held)

    n, bs, accum = len(train_req), cfg.batch_size, max(cfg.grad_accum, 1)
    per_epoch = math.ceil(n / bs)
    total_micro = max(1, math.ceil(cfg.epochs * per_epoch))
    epochs = math.ceil(total_micro / per_epoch)
    total_steps = sum(math.ceil((min((e + 1) * per_epoch, total_micro) - e * per_epoch) / accum) for e in range(epochs))
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {
            "params": [p for name, p in model.named_parameters() if not any(k in name for k in no_decay)],
            "weight_decay": cfg.weight_decay,
        },
        {
            "params": [p for name, p in model.named_parameters() if any(k in name for k in no_decay)],
            "weight_decay": 0.0,
        },
    ]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(cfg.warmup_ratio * total_steps), total_steps)
    amp = autocast_dtype(device)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None  # bf16 needs no loss scaling

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
        order = np.random.default_rng(cfg.seed + epoch).permutation(n)  # same shuffle after a resume
        start, end = epoch * per_epoch, min((epoch + 1) * per_epoch, total_micro)
        losses: list[float] = []
        began = time.perf_counter()
        for micro in range(max(state.micro, start), end):
            rows = order[(micro - start) * bs : (micro - start + 1) * bs]
            batch = to_device(collate(train_req, rows, pad_id, train_extra), device)
            labels = torch.as_tensor(train.targets[rows], device=device)
            with torch.autocast(device.type, dtype=amp) if amp is not None else nullcontext():
                logits = model(**batch)
                loss = torch.nn.functional.cross_entropy(logits.float(), labels) / accum
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
        metrics, _ = evaluate(model, cfg, held_req, held_extra, held.targets, pad_id, device, heartbeat)
        entry = {
            "epoch": epoch + 1,
            "step": state.step,
            "loss": round(float(np.mean(losses)), 4) if losses else None,
            "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"],
        }
        state.history.append(entry)
        if state.best_f1 is None or metrics["macro_f1"] > state.best_f1:
            state.best_f1, state.best_epoch, state.bad_epochs = metrics["macro_f1"], epoch + 1, 0
            _save(model.state_dict(), run_dir / BEST)
        else:
            state.bad_epochs += 1
        state.epoch = epoch + 1
        checkpoint()
        progress("eval", {**entry, "total_steps": total_steps})
        if state.bad_epochs >= cfg.patience:
            break

    model.load_state_dict(torch.load(run_dir / BEST, map_location="cpu", weights_only=True))
    metrics, _ = evaluate(model, cfg, held_req, held_extra, held.targets, pad_id, device, heartbeat)
    result = {
        "augment": cfg.augment,
        "metrics": metrics,
        "best_epoch": state.best_epoch,
        "history": state.history,
        "steps": state.step,
        "total_steps": total_steps,
        "train_examples": n,
        "eval_examples": len(held_req),
        "resumed_from_step": state.resumed_from_step,
        "examples_per_s": round(seen / train_seconds, 2) if train_seconds and seen else None,
    }
    return model, tokenizer, result
