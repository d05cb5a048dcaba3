"""What an index version is built with, and the one hash that says whether two versions differ.

Ingest (bootstrapping the first version), the reindex planner and the scheduled check all compute
the hash here, so "is a rebuild needed?" has a single answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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

    @classmethod
    def for_model(cls, model_path: str, chunk_tokens: int, chunk_overlap: int) -> IndexConfig:
        """Read from the model folder's files; the weights are loaded only if no config gives the width."""
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
        encoder = Encoder(str(folder))
        return cls(
            encoder.model_path, encoder.model_name, encoder.fingerprint(), encoder.dims, chunk_tokens, chunk_overlap
        )

    @property
    def extra(self) -> dict:
        """Everything besides the mapping that shapes an index; kept in the index's _meta."""
        return {"model": self.fingerprint, "chunk_tokens": self.chunk_tokens, "chunk_overlap": self.chunk_overlap}

    @property
    def hash(self) -> str:
        return config_hash(mapping(self.dims), self.extra)


def short(config_hash: str | None) -> str:
    return (config_hash or "")[:12]
