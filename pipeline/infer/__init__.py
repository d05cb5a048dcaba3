"""Batched inference: token-budget packing, the engine, trained-model folders and a per-process cache."""

from pipeline.infer.artefact import ArtefactConfig, load_model, read_config, save_model
from pipeline.infer.batching import PaddingReport, pack_batches
from pipeline.infer.engine import InferenceEngine, Request, tokenize
from pipeline.infer.predictor import Predictor, get_predictor

__all__ = [
    "ArtefactConfig",
    "InferenceEngine",
    "PaddingReport",
    "Predictor",
    "Request",
    "get_predictor",
    "load_model",
    "pack_batches",
    "read_config",
    "save_model",
    "tokenize",
]
