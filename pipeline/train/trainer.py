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


def load_base(cfg: TrainConfig, fast_tokenizer_for: str | None = None):
    """(encoder, tokenizer) from the base folder; ConfigError when it cannot be loaded, when a fast tokenizer is
    needed (fast_tokenizer_for says by what) and it has none, or when it accepts fewer than cfg.max_length tokens."""
    from transformers import AutoModel, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(cfg.base_model, local_files_only=True)
        encoder = AutoModel.from_pretrained(cfg.base_model, local_files_only=True)
    except Exception as exc:  # transformers raises many types for one cause: an unusable folder
        raise ConfigError(f"base model {cfg.base_model} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    if fast_tokenizer_for and not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            f"base model {cfg.base_model} has no fast tokenizer; {fast_tokenizer_for} needs its character offsets"
        )
    max_positions = getattr(encoder.config, "max_position_embeddings", None)
    if max_positions and cfg.max_length > max_positions:
        raise ConfigError(f"max length {cfg.max_length} exceeds what {cfg.base_model} accepts ({max_positions})")
    return encoder, tokenizer


def build_model(cfg: TrainConfig):
    """(model, tokenizer) freshly initialised from the base folder; ConfigError when it cannot be used."""
    from pipeline.infer.classifier_model import Classifier

    encoder, tokenizer = load_base(cfg)
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


class Optimisation:
    """The optimiser side of a run, shared by the sequence and the token-level trainers: the schedule of
    micro-batches, epochs and steps, linear warmup and decay, loss scaling under fp16, gradient accumulation
    with clipping, step counting, checkpoints, resume and early stopping.

    Made where the run's checkpoint is to be read (it restores the model, optimiser, scheduler, scaler,
    RNG states and RunState from run_dir when a checkpoint is there).
    """

    def __init__(
        self,
        model,
        optimizer,
        cfg: TrainConfig,
        n: int,
        device,
        run_dir: Path,
        progress: Callable[[str, dict], None],
    ) -> None:
        import torch
        from transformers import get_linear_schedule_with_warmup

        self.model, self.optimizer, self.cfg, self.run_dir, self.progress = model, optimizer, cfg, run_dir, progress
        self.batch_size, self.accum = cfg.batch_size, max(cfg.grad_accum, 1)
        self.per_epoch = math.ceil(n / self.batch_size)
        self.total_micro = max(1, math.ceil(cfg.epochs * self.per_epoch))
        self.epochs = math.ceil(self.total_micro / self.per_epoch)
        self.total_steps = sum(
            math.ceil((self.bounds(e)[1] - e * self.per_epoch) / self.accum) for e in range(self.epochs)
        )
        self.scheduler = get_linear_schedule_with_warmup(
            optimizer, math.ceil(cfg.warmup_ratio * self.total_steps), self.total_steps
        )
        self.device_type = device.type
        self.amp = autocast_dtype(device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None  # bf16 needs no loss scaling
        self.state = RunState()
        self._resume()

    def bounds(self, epoch: int) -> tuple[int, int]:
        """The micro-batches [start, end) of one epoch (a fractional cfg.epochs ends the last one early)."""
        return epoch * self.per_epoch, min((epoch + 1) * self.per_epoch, self.total_micro)

    def autocast(self):
        import torch

        return torch.autocast(self.device_type, dtype=self.amp) if self.amp is not None else nullcontext()

    def _resume(self) -> None:
        import torch

        ckpt_path = self.run_dir / CHECKPOINT
        if not ckpt_path.exists():
            return
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        _set_rng_state(ckpt["rng"])
        self.state = RunState(**ckpt["state"])
        self.state.resumed_from_step = self.state.step
        self.progress("resumed", {"step": self.state.step, "total_steps": self.total_steps})

    def checkpoint(self) -> None:
        _save(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler else None,
                "rng": _rng_state(),
                "state": self.state.__dict__,
            },
            self.run_dir / CHECKPOINT,
        )

    def micro_step(self, loss, micro: int, end: int, epoch: int, losses: list[float]) -> None:
        """Backward for micro-batch `micro` of an epoch ending at `end` (its loss already divided by the
        accumulation); after every accum-th micro-batch and the epoch's last, one optimiser step."""
        import torch

        state, scaler, optimizer = self.state, self.scaler, self.optimizer
        (scaler.scale(loss) if scaler else loss).backward()
        losses.append(loss.item() * self.accum)
        state.micro = micro + 1
        if state.micro % self.accum and state.micro != end:
            return
        if scaler:
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        self.scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state.step += 1
        if state.step % self.cfg.checkpoint_steps == 0:
            self.checkpoint()
        self.progress(
            "step",
            {
                "epoch": epoch + 1,
                "step": state.step,
                "total_steps": self.total_steps,
                "loss": round(float(np.mean(losses[-self.accum :])), 4),
                "lr": self.scheduler.get_last_lr()[0],
                "checkpointed": state.step % self.cfg.checkpoint_steps == 0,
            },
        )

    def end_epoch(self, epoch: int, entry: dict, score: float) -> bool:
        """Record an evaluated epoch (its history entry, and score, the figure early stopping follows):
        keep the best weights, checkpoint, report; True when patience has run out."""
        state = self.state
        state.history.append(entry)
        if state.best_f1 is None or score > state.best_f1:
            state.best_f1, state.best_epoch, state.bad_epochs = score, epoch + 1, 0
            _save(self.model.state_dict(), self.run_dir / BEST)
        else:
            state.bad_epochs += 1
        state.epoch = epoch + 1
        self.checkpoint()
        self.progress("eval", {**entry, "total_steps": self.total_steps})
        return state.bad_epochs >= self.cfg.patience

    def load_best(self) -> None:
        import torch

        self.model.load_state_dict(torch.load(self.run_dir / BEST, map_location="cpu", weights_only=True))


def train_run(
    cfg: TrainConfig, train: Split, held: Split, run_dir: Path, progress: Callable[[str, dict], None] | None = None
):
    """Train (or resume) one run in run_dir; returns (model with its best weights, tokenizer, result)."""
    import torch

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

    n = len(train_req)
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
    run = Optimisation(model, torch.optim.AdamW(groups, lr=cfg.lr), cfg, n, device, run_dir, progress)
    state, bs = run.state, run.batch_size

    seen, train_seconds = 0, 0.0
    for epoch in range(state.epoch, run.epochs):
        order = np.random.default_rng(cfg.seed + epoch).permutation(n)  # same shuffle after a resume
        start, end = run.bounds(epoch)
        losses: list[float] = []
        began = time.perf_counter()
        for micro in range(max(state.micro, start), end):
            rows = order[(micro - start) * bs : (micro - start + 1) * bs]
            batch = to_device(collate(train_req, rows, pad_id, train_extra), device)
            labels = torch.as_tensor(train.targets[rows], device=device)
            with run.autocast():
                logits = model(**batch)
                loss = torch.nn.functional.cross_entropy(logits.float(), labels) / run.accum
            seen += len(rows)
            run.micro_step(loss, micro, end, epoch, losses)
        train_seconds += time.perf_counter() - began
        metrics, _ = evaluate(model, cfg, held_req, held_extra, held.targets, pad_id, device, heartbeat)
        entry = {
            "epoch": epoch + 1,
            "step": state.step,
            "loss": round(float(np.mean(losses)), 4) if losses else None,
            "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"],
        }
        if run.end_epoch(epoch, entry, metrics["macro_f1"]):
            break

    run.load_best()
    metrics, _ = evaluate(model, cfg, held_req, held_extra, held.targets, pad_id, device, heartbeat)
    result = {
        "augment": cfg.augment,
        "metrics": metrics,
        "best_epoch": state.best_epoch,
        "history": state.history,
        "steps": state.step,
        "total_steps": run.total_steps,
        "train_examples": n,
        "eval_examples": len(held_req),
        "resumed_from_step": state.resumed_from_step,
        "examples_per_s": round(seen / train_seconds, 2) if train_seconds and seen else None,
    }
    return model, tokenizer, result
