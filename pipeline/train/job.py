"""The training job use case: data → leak-free neighbours → one or two runs → a model folder and metrics.

Everything a job produces lives in its work folder (settings.data_dir/models/<job id>/), so a task that
is delivered again after its worker died finds the neighbours, finished runs and checkpoints there:
neighbours.json (ids and texts, for reproduction), vectors.npz (fusion), runs/<mode>/ (checkpoints and
result.json), model/ (the registered model's folder).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from pipeline.errors import PermanentError
from pipeline.infer.artefact import AUGMENTS, save_model
from pipeline.neighbours import NeighbourSet, leak_rules, neighbour_vectors, retrieve
from pipeline.train.data import DataError, Examples, data_hash, load_examples, split
from pipeline.train.trainer import BEST, CHECKPOINT, TRAIN_DEFAULTS, Split, TrainConfig, train_run


@dataclass
class TrainRequest:
    """What `docpipe train` asked for; stored in the job row's options."""

    data: str
    text_col: str
    label_col: str
    id_col: str | None = None
    time_col: str | None = None
    augment: str = "none"
    neighbours: int = TRAIN_DEFAULTS.neighbours
    epochs: float = TRAIN_DEFAULTS.epochs
    task: str = "default"
    compare: bool = False
    base_model: str | None = None
    max_length: int = TRAIN_DEFAULTS.max_length
    batch_size: int = TRAIN_DEFAULTS.batch_size
    grad_accum: int = TRAIN_DEFAULTS.grad_accum
    lr: float = TRAIN_DEFAULTS.lr
    eval_fraction: float = TRAIN_DEFAULTS.eval_fraction
    patience: int = TRAIN_DEFAULTS.patience
    seed: int = TRAIN_DEFAULTS.seed
    checkpoint_steps: int = TRAIN_DEFAULTS.checkpoint_steps

    @classmethod
    def from_options(cls, options: dict) -> TrainRequest:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in options.items() if k in known and v is not None})

    def check(self) -> None:
        """Refuse option values no run could use (the CLI checks them too, before queueing)."""
        if self.augment not in AUGMENTS:
            raise DataError(f"unknown augmentation {self.augment!r}; use one of {', '.join(AUGMENTS)}")
        if self.augment != "none" and not 1 <= self.neighbours <= 16:
            raise DataError(f"--neighbours must be 1..16 with --augment {self.augment}, got {self.neighbours}")
        if not 0 < self.epochs <= 100:
            raise DataError(f"--epochs must be in (0, 100], got {self.epochs}")
        if not 16 <= self.max_length <= 8192:
            raise DataError(f"--max-length must be 16..8192, got {self.max_length}")
        if self.batch_size < 1 or self.grad_accum < 1 or self.checkpoint_steps < 1 or self.patience < 1:
            raise DataError("batch size, gradient accumulation, checkpoint steps and patience must be positive")
        if not 0 < self.lr < 1:
            raise DataError(f"learning rate must be in (0, 1), got {self.lr}")

    def modes(self) -> list[str]:
        """The registered model's augmentation first, then the baseline when comparing."""
        return [self.augment] + (["none"] if self.compare and self.augment != "none" else [])


class TrainingJob:
    def __init__(self, request: TrainRequest, tenant: str, workdir: Path, base_model: str, device: str = "auto"):
        request.check()
        self.request, self.tenant, self.workdir = request, tenant, Path(workdir)
        self.base_model, self.device = base_model, device
        self.examples: Examples | None = None
        self.train_rows: list[int] = []
        self.held_rows: list[int] = []
        self.neighbours: NeighbourSet | None = None
        self.vectors: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def model_dir(self) -> Path:
        return self.workdir / "model"

    def load(self) -> Examples:
        r = self.request
        self.examples = load_examples(r.data, r.text_col, r.label_col, r.id_col, r.time_col)
        self.train_rows, self.held_rows = split(self.examples, r.eval_fraction, r.seed)
        return self.examples

    def data_hash(self) -> str:
        return data_hash(self._loaded())

    def _loaded(self) -> Examples:
        if self.examples is None:
            raise RuntimeError("the training data is not loaded yet: call load() first")
        return self.examples

    def _found(self) -> NeighbourSet:
        if self.neighbours is None:
            raise RuntimeError("no neighbours yet: call find_neighbours() first")
        return self.neighbours

    def _neighbour_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        if self.vectors is None:
            raise RuntimeError("no neighbour vectors yet: call load_vectors() first")
        return self.vectors

    @property
    def needs_neighbours(self) -> bool:
        return self.request.augment != "none"

    def find_neighbours(
        self,
        session,
        es,
        index: str,
        encoder,
        dedup: dict,
        allow_undated: bool,
        heartbeat: Callable[[int], None] | None = None,
    ) -> NeighbourSet:
        """Neighbours of every example (training and held-out alike); computed once, then read back."""
        path = self.workdir / "neighbours.json"
        if path.exists():
            self.neighbours = NeighbourSet.from_json(path.read_text())
            return self.neighbours
        ex = self._loaded()
        rules = leak_rules(session, self.tenant, ex.texts, ex.ids, ex.times, dedup)
        found = retrieve(
            session, es, index, self.tenant, encoder, ex.texts, rules, self.request.neighbours, allow_undated, heartbeat
        )
        if found.count() == 0:
            raise PermanentError(
                f"no neighbour passages found for any example in {index} (tenant "
                f"{self.tenant}); ingest the corpus first, or train with --augment none"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(found.to_json())
        tmp.replace(path)
        self.neighbours = found
        return found

    def load_vectors(self, es, index: str, dims: int) -> None:
        path = self.workdir / "vectors.npz"
        if path.exists():
            saved = np.load(path)
            self.vectors = (saved["vectors"], saved["mask"])
            return
        self.vectors = neighbour_vectors(es, index, self._found(), dims)
        np.savez(self.workdir / "vectors.tmp.npz", vectors=self.vectors[0], mask=self.vectors[1])
        (self.workdir / "vectors.tmp.npz").replace(path)

    def config(self, mode: str) -> TrainConfig:
        r = self.request
        return TrainConfig(
            base_model=self.base_model,
            augment=mode,
            labels=self._loaded().label_set,
            max_length=r.max_length,
            neighbours=r.neighbours if mode != "none" else 0,
            neighbour_dims=int(self._neighbour_vectors()[0].shape[2]) if mode == "fusion" else None,
            epochs=r.epochs,
            batch_size=r.batch_size,
            grad_accum=r.grad_accum,
            lr=r.lr,
            patience=r.patience,
            seed=r.seed,
            checkpoint_steps=r.checkpoint_steps,
            device=self.device,
        )

    def _split(self, rows: list[int], mode: str) -> Split:
        ex = self._loaded()
        side = Split([ex.texts[i] for i in rows], ex.targets()[rows])
        if mode == "concat":
            found = self._found()
            side.passages = [found.passages(i) for i in rows]
        if mode == "fusion":
            vectors, mask = self._neighbour_vectors()
            side.vectors, side.mask = vectors[rows], mask[rows]
        return side

    def run(self, mode: str, progress: Callable[[str, dict], None] | None = None) -> dict:
        """Train one mode (resuming its checkpoint); the first mode's model is saved as the job's model."""
        run_dir = self.workdir / "runs" / mode
        done = run_dir / "result.json"
        if done.exists():
            return json.loads(done.read_text())
        cfg = self.config(mode)
        model, tokenizer, result = self._train(cfg, mode, run_dir, progress)
        if mode == self.request.modes()[0]:
            save_model(self.model_dir, model, tokenizer, cfg.artefact())
            if self.neighbours is not None:  # the model folder alone tells which passages it learnt from
                shutil.copyfile(self.workdir / "neighbours.json", self.model_dir / "neighbours.json")
        done.with_suffix(".tmp").write_text(json.dumps(result))
        done.with_suffix(".tmp").replace(done)
        for name in (CHECKPOINT, BEST):  # hundreds of MB each; the result and model folder remain
            (run_dir / name).unlink(missing_ok=True)
        return result

    def _train(self, cfg: TrainConfig, mode: str, run_dir: Path, progress: Callable[[str, dict], None] | None):
        """One run of the task's trainer: (model with its best weights, tokenizer, result)."""
        return train_run(cfg, self._split(self.train_rows, mode), self._split(self.held_rows, mode), run_dir, progress)

    def params(self) -> dict:
        p = {k: v for k, v in asdict(self.request).items() if k not in ("data", "task")}
        p.update(train_examples=len(self.train_rows), eval_examples=len(self.held_rows), base_model=self.base_model)
        if self.neighbours is not None:
            p.update(
                neighbour_count=self.neighbours.count(),
                neighbours_hash=self.neighbours.ids_hash(),
                neighbours_file=str(self.workdir / "neighbours.json"),
                neighbour_leaks_blocked_after_search=self.neighbours.blocked_after_search,
            )
        return p


def summarise(request: TrainRequest, results: dict[str, dict]) -> dict:
    """Registry metrics: `retrieval` (the augmented model) and/or `baseline` (none), and the gain."""
    out: dict = {}
    for mode, result in results.items():
        out["baseline" if mode == "none" else "retrieval"] = {
            **result["metrics"],
            "augment": mode,
            "best_epoch": result["best_epoch"],
            "examples_per_s": result["examples_per_s"],
        }
    if "baseline" in out and "retrieval" in out:
        shared = [m for m in ("accuracy", "macro_f1", "f1") if m in out["retrieval"] and m in out["baseline"]]
        out["gain"] = {m: round(out["retrieval"][m] - out["baseline"][m], 4) for m in shared}  # f1: entity-level
    return out
