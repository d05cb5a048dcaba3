"""A loaded classifier behind the batched engine, and the per-process cache the gpu worker keeps."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from pipeline.config import InferSettings
from pipeline.devices import resolve_device
from pipeline.infer.artefact import ArtefactConfig, load_model
from pipeline.infer.engine import InferenceEngine, default_token_budget
from pipeline.infer.inputs import ConcatLayout, concat_requests, text_requests

log = logging.getLogger(__name__)
_CACHE_SIZE = 3
_cache: OrderedDict[tuple[str, str, int, bool, str], Predictor] = OrderedDict()
_lock = threading.Lock()
_told: set[str] = set()  # devices already told that int8 does not apply to them


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def serving_quantize(quantize: str, device) -> str:
    """What `quantize` means on `device`: int8 weights pay on a CPU; a GPU runs the model in bf16 (fp16) instead,
    which the int8 graph's CPU kernels could only slow down. Said once per process and device."""
    if InferSettings.check_quantize(quantize) == "none" or device.type == "cpu":
        return quantize
    with _lock:
        first = str(device) not in _told
        _told.add(str(device))
    if first:
        log.info("DOCPIPE_INFER_QUANTIZE=%s applies on the CPU only: classifiers on %s run in bf16", quantize, device)
    return "none"


class Predictor:
    """quantize int8 (on the CPU): the folder's int8 ONNX graph (pipeline/infer/quantized.py) instead of the torch
    model, with the same tokenizer, inputs and batching; `variant` says which of the two labels."""

    def __init__(
        self,
        folder: str | Path,
        device: str = "auto",
        token_budget: int = 0,
        compile: bool = False,
        quantize: str = "none",
    ):
        self.folder = str(folder)
        self.device = resolve_device(device)
        self.quantize = serving_quantize(quantize, self.device)
        if self.quantize == "int8":
            from pipeline.infer.quantized import load_int8

            self.model, self.tokenizer, self.config = load_int8(folder)
        else:
            self.model, self.tokenizer, self.config = load_model(folder, self.device, compile)
        # one longest request must always fit
        budget = max(token_budget or default_token_budget(self.device), self.config.max_length)
        self.engine = InferenceEngine(self.model, self.tokenizer.pad_token_id, self.device, budget, autocast=False)

    @property
    def quantized(self) -> bool:
        return self.quantize != "none"

    @property
    def variant(self) -> str:
        """What computes the labels: torch, or onnx-int8."""
        from pipeline.infer.quantized import VARIANT

        return VARIANT if self.quantized else "torch"

    @property
    def labels(self) -> list[str]:
        return self.config.labels

    @property
    def needs_neighbours(self) -> bool:
        return self.config.augment != "none" and self.config.neighbours > 0

    def predict(
        self,
        texts: list[str],
        passages: list[list[str]] | None = None,
        vectors: np.ndarray | None = None,
        vector_mask: np.ndarray | None = None,
    ) -> np.ndarray:
        """Class probabilities, (len(texts), len(labels)), row i for texts[i].

        concat models read `passages` (neighbour texts); fusion models read `vectors`
        (len(texts), k, dims) with `vector_mask` marking the neighbours that exist.
        """
        if not texts:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        cfg: ArtefactConfig = self.config
        extras: dict[str, np.ndarray] | None = None
        if cfg.augment == "concat":
            requests = concat_requests(
                self.tokenizer,
                texts,
                passages or [[] for _ in texts],
                ConcatLayout(cfg.max_length, cfg.neighbours, cfg.text_share),
            )
        else:
            requests = text_requests(self.tokenizer, texts, cfg.max_length)
        if cfg.augment == "fusion":
            k, dims = cfg.neighbours, int(cfg.neighbour_dims or 0)
            if vectors is None:
                vectors = np.zeros((len(texts), k, dims), dtype=np.float32)
                vector_mask = np.zeros((len(texts), k), dtype=np.int64)
            elif vector_mask is None:
                raise ValueError("neighbour vectors come with their mask")
            extras = {"neighbours": vectors.astype(np.float32), "neighbour_mask": vector_mask.astype(np.int64)}
        return softmax(self.engine.run(requests, extras))


def get_predictor(
    folder: str | Path, device: str = "auto", token_budget: int = 0, compile: bool = False, quantize: str = "none"
) -> Predictor:
    """The process's loaded model for this artefact folder: a gpu worker loads (and compiles) each model once."""
    quantize = serving_quantize(quantize, resolve_device(device))  # int8 asked of a GPU is its torch model
    key = (str(Path(folder).resolve()), device, token_budget, compile, quantize)
    with _lock:
        predictor = _cache.get(key)
        if predictor is not None:
            _cache.move_to_end(key)
            return predictor
    predictor = Predictor(key[0], device, token_budget, compile, quantize)
    with _lock:
        _cache[key] = predictor
        while len(_cache) > _CACHE_SIZE:  # a few models fit; the least recently used one goes
            _cache.popitem(last=False)
    return predictor


def cached_folders() -> list[str]:
    with _lock:
        return [key[0] for key in _cache]
