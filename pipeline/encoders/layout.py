"""What a sentence-transformers folder computes, read from its files: pooling, normalisation, length cap."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ConfigError


@dataclass(frozen=True)
class Layout:
    pooling: str  # mean | cls
    normalise: bool
    max_length: int | None


def read_layout(root: Path) -> Layout:
    """The layout of a folder we can reproduce outside sentence-transformers: Transformer, then mean or CLS
    Pooling, then an optional Normalize; anything else is a ConfigError."""
    try:
        modules = json.loads((root / "modules.json").read_text())
        sbert_file = root / "sentence_bert_config.json"
        sbert = json.loads(sbert_file.read_text()) if sbert_file.is_file() else {}
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{root} is not a sentence-transformers folder: {exc}") from None
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    if (
        kinds[:2] != ["Transformer", "Pooling"]
        or any(k != "Normalize" for k in kinds[2:])
        or modules[0].get("path", "") not in ("", ".")
    ):
        raise ConfigError(f"{root}: module layout {kinds} is not Transformer + Pooling (+ Normalize)")
    pooling = json.loads((root / modules[1]["path"] / "config.json").read_text())
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    if modes not in (["pooling_mode_mean_tokens"], ["pooling_mode_cls_token"]):
        raise ConfigError(f"{root}: pooling {modes} is not plain mean or CLS pooling")
    mode = "mean" if modes[0].endswith("mean_tokens") else "cls"
    return Layout(mode, "Normalize" in kinds, sbert.get("max_seq_length"))
