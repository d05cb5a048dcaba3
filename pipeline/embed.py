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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.devices import compute_threads, resolve_device
from pipeline.paths import DATA_DIR

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

            compute_threads()
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
        graph = ensure_graph(encoder.model_path, folder, encoder.quantize, encoder.backend)
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
        self.cache_dir = Path(cache_dir) if cache_dir else DATA_DIR / "encoders"
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

    @property
    def tokenizer(self):
        """The tokenizer of the text path: sentence-transformers' for torch, the exported graph's otherwise."""
        return self.graph.tokenizer if self.backend != "torch" else self.model.tokenizer

    @property
    def token_tag(self) -> bytes | None:
        """The tag of the tokenizer behind encode (pipeline/encoders/token_ids.py): token ids stored with this tag
        are fed to the model as they are. None when the text path changes a text before tokenising it."""
        if self.backend == "torch" and getattr(self.model[0], "do_lower_case", False):
            return None  # sentence-transformers lowercases texts first; chunking's ids are of the text as it is
        from pipeline.encoders.token_ids import tokenizer_info

        return tokenizer_info(self.tokenizer).tag

    def encode(self, texts: list[str], token_ids: list[np.ndarray | None] | None = None) -> np.ndarray:
        """(len(texts), dims) float32 unit vectors, row i for texts[i]. token_ids: row i's content ids (no special
        tokens) where known, as this encoder's tokenizer gives them for texts[i] (its token_tag): those rows skip
        tokenising and give the text's vector (truncated to the model's length as the text would be)."""
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        if token_ids is None or all(ids is None for ids in token_ids):
            return self._encode_texts(list(texts))
        if len(token_ids) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(token_ids)} token id rows")
        missing = [i for i, ids in enumerate(token_ids) if ids is None]
        found = iter(self._content_ids([texts[i] for i in missing]))
        ids = [next(found) if row is None else row for row in token_ids]
        # batched as the text path batches these texts (longest text first): an int8 graph quantises its
        # activations per batch, so a chunk's vector depends on the batch it runs in
        return self.encode_ids(ids, [len(t) for t in texts])

    def _content_ids(self, texts: list[str]) -> list[list[int]]:
        """The content ids the text path gives `texts`, as far as the model's length lets them in."""
        if not texts:
            return []
        from pipeline.encoders.token_ids import tokenizer_info

        tokenizer = self.tokenizer
        info = tokenizer_info(tokenizer)
        room = max(self._max_length - len(info.before) - len(info.after), 1)
        strip = self.backend == "torch"  # sentence-transformers strips texts before tokenising them
        return tokenizer(
            [t.strip() if strip else t for t in texts],
            add_special_tokens=False,
            truncation=True,
            max_length=room,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]

    @property
    def _max_length(self) -> int:
        return self.max_seq_length if self.backend == "torch" else self.graph.max_length

    def encode_ids(self, ids: Sequence[np.ndarray | list[int]], sort_by: list[int] | None = None) -> np.ndarray:
        """Vectors of pre-tokenised inputs (content ids, no special tokens), the model's special tokens added and
        each cut to its max length; longest first in batches of batch_size, by `sort_by` (the texts' lengths,
        which the text path sorts by) or else by the number of ids."""
        from pipeline.encoders.token_ids import model_inputs, tokenizer_info

        if not ids:
            return np.zeros((0, self.dims), dtype=np.float32)
        tokenizer, max_length = self.tokenizer, self._max_length
        info, pad = tokenizer_info(tokenizer), tokenizer.pad_token_id or 0
        rows_of = [np.asarray(x, dtype=np.int64).tolist() for x in ids]
        order = np.argsort([-n for n in ([len(r) for r in rows_of] if sort_by is None else sort_by)], kind="stable")
        out: np.ndarray | None = None
        for start in range(0, len(ids), self.batch_size):
            rows = order[start : start + self.batch_size]
            vectors = self._forward_ids(*model_inputs([rows_of[i] for i in rows], info, max_length, pad))
            if out is None:
                out = np.empty((len(ids), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        assert out is not None
        return out

    def _forward_ids(self, input_ids: np.ndarray, attention_mask) -> np.ndarray:
        if self.backend != "torch":
            return self.graph.encode_batch({"input_ids": input_ids, "attention_mask": attention_mask})
        import torch

        model = self.model
        device = model.device
        features = {
            "input_ids": torch.from_numpy(input_ids).to(device),
            "attention_mask": torch.from_numpy(attention_mask).to(device),
        }
        if "token_type_ids" in self.tokenizer.model_input_names:  # what the tokenizer gives a single text
            features["token_type_ids"] = torch.zeros_like(features["input_ids"])
        with torch.inference_mode():
            pooled = model(features)["sentence_embedding"]
            vectors = torch.nn.functional.normalize(pooled.float(), p=2, dim=1)
        return np.ascontiguousarray(vectors.cpu().numpy(), dtype=np.float32)

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
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
