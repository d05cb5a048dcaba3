"""Sentence embeddings through the batched engine, so one engine serves classification and embeddings.

Covers the common sentence-transformers layout (Transformer, then mean or CLS Pooling, then an optional
Normalize), which gives the same vectors as pipeline.embed.Encoder; any other layout is refused with a
ConfigError and callers fall back to sentence-transformers itself.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from pipeline.devices import resolve_device
from pipeline.encoders.layout import read_layout
from pipeline.encoders.token_ids import encode_mixed, tokenizer_info
from pipeline.infer.collate import special_tokens
from pipeline.infer.engine import (
    InferenceEngine,
    default_token_budget,
    for_inference,
    mean_pool,
    tokenize,
)

_cache: dict[tuple[str, str, int, bool], EngineEncoder] = {}
_lock = threading.Lock()


class EngineEncoder:
    def __init__(self, model_path: str, device: str = "auto", token_budget: int = 0, compile: bool = False):
        import torch
        from transformers import AutoModel, AutoTokenizer

        root = Path(model_path)
        layout = read_layout(root)
        self.pooling, self.normalise, max_length = layout.pooling, layout.normalise, layout.max_length
        self.device = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(root, local_files_only=True)
        self.model = for_inference(AutoModel.from_pretrained(root, local_files_only=True), self.device, compile)
        self.max_length = int(max_length or min(self.tokenizer.model_max_length, 512))
        self.dims = int(self.model.config.hidden_size)

        def forward(**batch):
            hidden = self.model(**batch).last_hidden_state
            pooled = mean_pool(hidden, batch.get("attention_mask")) if self.pooling == "mean" else hidden[:, 0]
            return torch.nn.functional.normalize(pooled.float(), dim=-1) if self.normalise else pooled

        self.engine = InferenceEngine(
            forward,
            self.tokenizer.pad_token_id,
            self.device,
            max(token_budget or default_token_budget(self.device), self.max_length),
            autocast=False,
        )

    @property
    def token_tag(self) -> bytes:
        """Token ids stored with this tag (pipeline/encoders/token_ids.py) are this tokenizer's: encode takes them."""
        return tokenizer_info(self.tokenizer).tag

    def encode(self, texts: list[str], token_ids: list[np.ndarray | None] | None = None) -> np.ndarray:
        """(len(texts), dims) float32, row i for texts[i]; rows with token_ids (content ids of texts[i], no special
        tokens) are not tokenised again."""
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        if token_ids is not None:
            return encode_mixed(list(texts), list(token_ids), self._encode_texts, self.encode_ids)
        return self._encode_texts(list(texts))

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        return np.ascontiguousarray(self.engine.run(tokenize(self.tokenizer, texts, self.max_length)), dtype=np.float32)

    def encode_ids(self, ids: list[np.ndarray]) -> np.ndarray:
        """Vectors of pre-tokenised inputs: the engine adds the special tokens and cuts each to the max length."""
        if not ids:
            return np.zeros((0, self.dims), dtype=np.float32)
        rows = self.engine.run_ids(
            [np.asarray(x, dtype=np.int64).tolist() for x in ids],
            wrap=special_tokens(self.tokenizer),
            max_length=self.max_length,
        )
        return np.ascontiguousarray(rows, dtype=np.float32)


def get_engine_encoder(
    model_path: str, device: str = "auto", token_budget: int = 0, compile: bool = False
) -> EngineEncoder:
    key = (str(Path(model_path).resolve()), device, token_budget, compile)
    with _lock:
        found = _cache.get(key)
    if found is None:
        found = EngineEncoder(key[0], device, token_budget, compile)
        with _lock:
            _cache[key] = found
    return found
