"""The token tagger: encoder → dropout → linear head per token; its folder, and serving it in batches.

The folder has the classifier's layout (pipeline/infer/artefact.py): the encoder as a Hugging Face folder,
the head in head.pt, docpipe_model.json with the tags as labels and `extra.kind = "ner"`, so the
registry's checks (promote, rollback) read it unchanged.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.devices import resolve_device
from pipeline.errors import ConfigError
from pipeline.infer.artefact import HEAD_FILE, ArtefactConfig, read_config
from pipeline.infer.engine import InferenceEngine, default_token_budget, for_inference
from pipeline.infer.ner_inputs import NER_KIND, NER_TASK, Span, TagLayout, decode, encode, merge, split_words

__all__ = ["NER_KIND", "NER_TASK", "Tagger", "TokenTagger", "get_tagger", "load_tagger", "predict_words"]


class TokenTagger(nn.Module):
    def __init__(self, encoder: nn.Module, num_tags: int, dropout: float = 0.1):
        super().__init__()
        config: Any = encoder.config
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(config.hidden_size, num_tags)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**kwargs).last_hidden_state.to(self.head.weight.dtype)
        return self.head(self.dropout(hidden))  # (batch, positions, tags)

    def head_state(self) -> dict:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("encoder.")}


def layout_of(config: ArtefactConfig) -> TagLayout:
    return TagLayout(config.max_length, int(config.extra.get("stride", 32)), config.neighbours, config.text_share)


def best_tags(model, width: int):
    """`forward` for the engine: per position the best tag and its probability, padded to `width` positions
    (the engine keeps one row width for all batches), as (batch, 2 * width)."""

    def forward(**batch):
        probs = torch.softmax(model(**batch).float(), dim=-1)
        top, ids = probs.max(dim=-1)
        n = min(ids.shape[1], width)  # static-shape batches may pad past the model's length: only padding there
        out = torch.zeros((ids.shape[0], 2 * width), dtype=torch.float32, device=ids.device)
        out[:, :n] = ids[:, :n].float()
        out[:, width : width + n] = top[:, :n]
        return out

    return forward


def predict_words(
    engine: InferenceEngine,
    tokenizer,
    layout: TagLayout,
    texts: list[str],
    words: list[list[tuple[int, int]]],
    passages: list[list[str]] | None = None,
) -> list[list[tuple[int, float]]]:
    """(tag id, probability) of every word of every text, windows merged back."""
    if not texts:
        return []
    tagged = encode(tokenizer, texts, words, layout, passages)
    out = engine.run(tagged.requests)
    width = layout.max_length
    return merge(tagged, out[:, :width].astype(np.int64), out[:, width:], [len(w) for w in words])


def load_tagger(folder: str | Path, device, compile: bool = False):
    """(tagger in inference mode on `device`, tokenizer, config); ConfigError when the folder is no NER model."""
    from transformers import AutoModel, AutoTokenizer

    config = read_config(folder)
    if config.extra.get("kind") != NER_KIND:
        raise ConfigError(f"model folder {folder} is not a token-level (NER) model")
    folder = Path(folder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = TokenTagger(AutoModel.from_pretrained(folder, local_files_only=True), len(config.labels))
        state = torch.load(folder / HEAD_FILE, map_location="cpu", weights_only=True)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("encoder.") for k in missing):
            raise ValueError(f"head does not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
    except Exception as exc:  # transformers raises many types for one cause: an unusable folder
        raise ConfigError(f"model folder {folder} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    return for_inference(model, device, compile), tokenizer, config


class Tagger:
    """A loaded NER model behind the batched engine: texts in, entity spans (character offsets) out."""

    def __init__(self, folder: str | Path, device: str = "auto", token_budget: int = 0, compile: bool = False):
        self.folder = str(folder)
        self.device = resolve_device(device)
        self.model, self.tokenizer, self.config = load_tagger(folder, self.device, compile)
        self.layout = layout_of(self.config)
        budget = max(token_budget or default_token_budget(self.device), self.config.max_length)
        forward = best_tags(self.model, self.config.max_length)
        self.engine = InferenceEngine(forward, self.tokenizer.pad_token_id, self.device, budget, autocast=False)

    @property
    def needs_neighbours(self) -> bool:
        return self.config.augment == "concat" and self.config.neighbours > 0

    def tag(self, texts: list[str], passages: list[list[str]] | None = None) -> list[list[Span]]:
        words = [split_words(t) for t in texts]
        found = predict_words(self.engine, self.tokenizer, self.layout, texts, words, passages)
        labels = self.config.labels
        return [
            decode(text, w, [labels[t] for t, _ in row], [p for _, p in row])
            for text, w, row in zip(texts, words, found)
        ]


_cache: OrderedDict[tuple, Tagger] = OrderedDict()
_lock = threading.Lock()


def get_tagger(folder: str | Path, device: str = "auto", token_budget: int = 0, compile: bool = False) -> Tagger:
    """The process's loaded tagger for this folder: a gpu worker loads each model once."""
    key = (str(Path(folder).resolve()), device, token_budget, compile)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    tagger = Tagger(key[0], device, token_budget, compile)
    with _lock:
        _cache[key] = tagger
        while len(_cache) > 2:
            _cache.popitem(last=False)
    return tagger
