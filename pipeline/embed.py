"""Batched, L2-normalised sentence embeddings; one loaded model per process.

Importing this module stays cheap (no torch): the model loads on first encode, so an API
process can read dims and fingerprint without paying for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.devices import resolve_device

# Keys rewritten whenever a model is re-saved; they do not change what it computes.
_VOLATILE_KEYS = frozenset({"_name_or_path", "transformers_version", "__version__"})
_GENERIC_DIRS = frozenset({"model", "models", "snapshot", "snapshots", "main", "latest"})
_COMMIT_HASH = re.compile(r"[0-9a-f]{40}")
_CARD_TITLE = re.compile(r"^# ([\w.\-]+)\s*$", re.MULTILINE)

_models: dict[tuple[str, str], object] = {}
_graphs: dict[tuple[str, str, str, int], object] = {}
_encoders: dict[tuple[str, str, int, str, str], Encoder] = {}
_lock = threading.Lock()


def _load_model(path: str, device: str):
    # Keyed by model and device only, so Encoders differing in batch size share the weights.
    with _lock:
        model = _models.get((path, device))
        if model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(path, device=device, local_files_only=True)
            model.eval()
            _models[(path, device)] = model
        return model


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _strip_volatile(value):
    if isinstance(value, dict):
        return {k: _strip_volatile(v) for k, v in value.items() if k not in _VOLATILE_KEYS}
    if isinstance(value, list):
        return [_strip_volatile(v) for v in value]
    return value


def _modules(root: Path) -> list[dict]:
    return _read_json(root / "modules.json") or []


def _dims_from_config(root: Path) -> int | None:
    """Output width read from module configs; None when a module's effect is unknown."""
    dims = None
    for module in _modules(root):
        kind = module.get("type", "").rsplit(".", 1)[-1]
        config = _read_json(root / module.get("path", "") / "config.json") or {}
        if kind == "Pooling":
            dims = config.get("word_embedding_dimension") or config.get("embedding_dimension")
        elif kind == "Dense":
            dims = config.get("out_features")
        elif kind not in ("Transformer", "Normalize"):
            return None
    return int(dims) if dims else None


def _model_name(root: Path) -> str:
    name = root.name
    if name.lower() not in _GENERIC_DIRS and not _COMMIT_HASH.fullmatch(name):
        return name
    for part in reversed(root.parts):  # Hugging Face cache: models--org--name/snapshots/<sha>
        if part.startswith("models--"):
            return part.rsplit("--", 1)[-1]
    readme = root / "README.md"
    if readme.is_file():
        title = _CARD_TITLE.search(readme.read_text(encoding="utf-8", errors="replace"))
        if title:
            return title.group(1)
    return root.parent.name or name


def _load_graph(encoder: Encoder):
    from pipeline.encoders.onnx import GraphEncoder, ensure_graph, export_folder

    key = (encoder.model_path, encoder.backend, encoder.quantize, encoder.batch_size)
    with _lock:
        found = _graphs.get(key)
    if found is None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        folder = export_folder(encoder.cache_dir, encoder.model_name, encoder.fingerprint())
        graph = ensure_graph(encoder.model_path, folder, encoder.quantize)
        found = GraphEncoder(encoder.model_path, graph, encoder.backend, encoder.batch_size)
        with _lock:
            found = _graphs.setdefault(key, found)
    return found


class Encoder:
    """backend torch runs sentence-transformers on `device`; onnx and openvino run an ONNX export of the same
    folder on the CPU (exported into `cache_dir` at first use), in fp32 or, with quantize int8, int8 weights."""

    def __init__(
        self,
        model_path: str,
        device: str = "auto",
        batch_size: int = 64,
        backend: str = "torch",
        quantize: str = "none",
        cache_dir: str | Path | None = None,
    ):
        from pipeline.encoders import check

        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        check(backend, quantize)
        self.model_path = str(Path(model_path).resolve())
        self.device = device
        self.batch_size = batch_size
        self.backend, self.quantize = backend, quantize
        self.cache_dir = Path(cache_dir) if cache_dir else Path(".docpipe") / "encoders"
        self._model = None
        self._graph = None

    @property
    def variant(self) -> str:
        from pipeline.encoders import variant

        return variant(self.backend, self.quantize)

    @property
    def quantized(self) -> bool:
        return self.quantize != "none"

    @property
    def graph(self):
        if self._graph is None:
            self._graph = _load_graph(self)
        return self._graph

    @property
    def model(self):
        if self._model is None:
            self._model = _load_model(self.model_path, str(resolve_device(self.device)))
        return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None or self._graph is not None

    @property
    def dims(self) -> int:
        if self._model is None:
            dims = _dims_from_config(Path(self.model_path))
            if dims:
                return dims
        get = getattr(self.model, "get_embedding_dimension", None)
        get = get or self.model.get_sentence_embedding_dimension
        return int(get())

    @property
    def max_seq_length(self) -> int:
        if self._model is None:
            config = _read_json(Path(self.model_path) / "sentence_bert_config.json") or {}
            if config.get("max_seq_length"):
                return int(config["max_seq_length"])
        return int(self.model.max_seq_length)

    @property
    def model_name(self) -> str:
        return _model_name(Path(self.model_path))

    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dims) float32 unit vectors, row i for texts[i]."""
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        if self.backend != "torch":
            return self.graph.encode(list(texts))
        import torch

        model = self.model
        with torch.inference_mode():
            # sentence-transformers sorts by length to cut padding and restores input order.
            vectors = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def fingerprint(self) -> str:
        """Changes when stored vectors would: another model, weights, pooling or length cap."""
        root = Path(self.model_path)
        described = {
            name: _strip_volatile(_read_json(root / name))
            for name in ("config.json", "sentence_bert_config.json", "modules.json")
        }
        for module in _modules(root):
            if module.get("path"):
                name = f"{module['path']}/config.json"
                described[name] = _strip_volatile(_read_json(root / name))
        weights = sorted(root.glob("*.safetensors")) + sorted(root.glob("pytorch_model*.bin"))
        described["weights"] = {p.name: p.stat().st_size for p in weights}
        described["normalize_embeddings"] = True
        blob = json.dumps(described, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def get_encoder(
    model_path: str | None = None,
    device: str = "auto",
    batch_size: int = 64,
    backend: str | None = None,
    quantize: str | None = None,
) -> Encoder:
    """The process-wide Encoder for these settings; a worker keeps its model between tasks. The backend and
    quantisation default to the configured ones (DOCPIPE_ENCODER_BACKEND, DOCPIPE_ENCODER_QUANTIZE)."""
    from pipeline.config import default_encoder_path, get_settings

    settings = get_settings()
    model_path = model_path or default_encoder_path()
    backend, quantize = backend or settings.encoder.backend, quantize or settings.encoder.quantize
    key = (str(Path(model_path).resolve()), device, batch_size, backend, quantize)
    with _lock:
        encoder = _encoders.get(key)
        if encoder is None:
            cache = settings.data_dir / "encoders"
            encoder = _encoders[key] = Encoder(key[0], device, batch_size, backend, quantize, cache)
        return encoder
