"""Encoder backends besides PyTorch: an ONNX export of the model folder, run by ONNX Runtime or OpenVINO, in fp32
or with int8 weights, and the quality guard a quantised encoder passes before it serves an index."""

from __future__ import annotations

from pipeline.errors import ConfigError

BACKENDS = ("torch", "onnx", "openvino")
QUANTIZE = ("none", "int8")
# How a variant computes its vectors, where that changed after the variant was first offered: it joins the index
# configuration hash, so versions built the older way differ in hash and a reindex moves them over. OpenVINO's
# int8 was ONNX Runtime's dynamic graph run by OpenVINO; it is NNCF's static quantisation now (encoders/onnx.py).
METHODS = {"openvino-int8": "nncf-static"}


def variant(backend: str, quantize: str) -> str:
    """One word for what computes the vectors: torch, onnx, onnx-int8, openvino, openvino-int8."""
    check(backend, quantize)
    return backend if quantize == "none" else f"{backend}-{quantize}"


def split(word: str) -> tuple[str, str]:
    """The (backend, quantize) that `variant` joins into `word`, as an index version records it; ConfigError for a
    word `variant` never gives (an unknown backend or quantisation, torch-int8, onnx-none)."""
    backend, dash, quantize = word.partition("-")
    quantize = quantize if dash else "none"
    try:
        if variant(backend, quantize) == word:
            return backend, quantize
    except ConfigError as exc:
        raise ConfigError(f"{word!r} is not an encoder variant: {exc}") from None
    raise ConfigError(f"{word!r} is not an encoder variant: it is spelled {variant(backend, quantize)!r}")


def check(backend: str, quantize: str) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"encoder backend {backend!r} is not one of {', '.join(BACKENDS)} (DOCPIPE_ENCODER_BACKEND)")
    if quantize not in QUANTIZE:
        raise ConfigError(
            f"encoder quantisation {quantize!r} is not one of {', '.join(QUANTIZE)} (DOCPIPE_ENCODER_QUANTIZE)"
        )
    if backend == "torch" and quantize != "none":
        raise ConfigError(
            "int8 runs on the onnx or openvino backend: set DOCPIPE_ENCODER_BACKEND=onnx (or openvino) with it"
        )
