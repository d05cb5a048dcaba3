"""What an index version is built with, and the one hash that says whether two versions differ.

Ingest (bootstrapping the first version), the reindex planner and the scheduled check all compute
the hash here, so "is a rebuild needed?" has a single answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.encoders import METHODS, variant
from pipeline.errors import ConfigError
from pipeline.index import config_hash, mapping


@dataclass(frozen=True)
class IndexConfig:
    model_path: str  # absolute folder: what a worker loads
    model_name: str
    fingerprint: str  # changes when the vectors would (weights, pooling, length cap)
    dims: int
    chunk_tokens: int
    chunk_overlap: int
    encoder: str = "torch"  # what computes the vectors: torch, onnx, onnx-int8, ... (pipeline/encoders)

    @classmethod
    def for_model(
        cls, model_path: str, chunk_tokens: int, chunk_overlap: int, encoder: str | None = None
    ) -> IndexConfig:
        """Read from the model folder's files; the weights are loaded only if no config gives the width.
        `encoder` defaults to the configured backend and quantisation (DOCPIPE_ENCODER_BACKEND, _QUANTIZE)."""
        from pipeline.embed import Encoder

        folder = Path(model_path)
        if not folder.is_dir() or not ((folder / "modules.json").is_file() or (folder / "config.json").is_file()):
            raise ConfigError(
                f"{model_path} is not a sentence-transformers model folder (no modules.json or config.json in it)"
            )
        if chunk_tokens < 1 or not 0 <= chunk_overlap < chunk_tokens:
            raise ConfigError(
                f"chunking needs tokens >= 1 and 0 <= overlap < tokens, got {chunk_tokens}/{chunk_overlap}"
            )
        encoder = encoder or configured_encoder()
        model = Encoder(str(folder))
        return cls(
            model.model_path, model.model_name, model.fingerprint(), model.dims, chunk_tokens, chunk_overlap, encoder
        )

    @property
    def extra(self) -> dict:
        """Everything besides the mapping that shapes an index; kept in the index's _meta. The encoder joins only
        when it is not PyTorch fp32, so that versions built before backends existed keep their hash."""
        extra: dict = {
            "model": self.fingerprint,
            "chunk_tokens": self.chunk_tokens,
            "chunk_overlap": self.chunk_overlap,
        }
        if self.encoder != "torch":
            extra["encoder"] = self.encoder
        if method := METHODS.get(self.encoder):
            extra["encoder_method"] = method
        return extra

    @property
    def hash(self) -> str:
        return config_hash(mapping(self.dims), self.extra)


def configured_encoder() -> str:
    """The variant DOCPIPE_ENCODER_BACKEND and _QUANTIZE name: what a new version is built with, and the last resort
    for a version recorded before migration 0020 whose index is gone (reindex/live.py: indexed_variant)."""
    from pipeline.config import get_settings

    configured = get_settings().encoder
    return variant(configured.backend, configured.quantize)


def short(config_hash: str | None) -> str:
    return (config_hash or "")[:12]
