"""A trained classifier as an int8 ONNX graph on the CPU, behind the same InferenceEngine as the torch model.

The whole Classifier (encoder, mean pooling, fusion over neighbour vectors, head) is exported with torch's exporter
and quantised by ONNX Runtime (dynamic int8, MatMul weights per channel), through the helpers the int8 encoder uses
(pipeline/encoders/onnx.py). The head is a Gemm, which stays fp32.

The exports live inside the artefact folder, in `onnx-<fingerprint>/`: a trained folder is never rewritten, so its
graph belongs with it (deleted with it, copied with it), and the fingerprint of its description, head and weight
sizes keeps a folder saved again in the same place from reading a stale graph. A file lock there lets two workers
that start together export once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.errors import ConfigError
from pipeline.infer.artefact import CONFIG_FILE, HEAD_FILE, ArtefactConfig, read_config

if TYPE_CHECKING:
    import torch

VARIANT = "onnx-int8"
_TOKENS = ("input_ids", "attention_mask", "token_type_ids")


def fingerprint(folder: str | Path) -> str:
    """Changes when the folder's model does: its description and head by content, its weights by name and size."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for name in (CONFIG_FILE, HEAD_FILE):
        digest.update((folder / name).read_bytes())
    for weights in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("pytorch_model*.bin")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def export_dir(folder: str | Path) -> Path:
    return Path(folder) / f"onnx-{fingerprint(folder)}"


def classifier_graph(folder: str | Path, quantize: str = "int8") -> Path:
    """The folder's classifier as an ONNX file (fp32 for quantize none, int8 for int8), exported at first use."""
    from pipeline.encoders.onnx import build_graph

    try:
        return build_graph(export_dir(folder), quantize, lambda target: export_classifier(folder, target), "classifier")
    except ConfigError:
        raise
    except Exception as exc:  # the exporter and the quantiser raise many types for one cause: no usable graph
        raise ConfigError(
            f"model folder {folder} cannot be exported to ONNX ({type(exc).__name__}: {exc}); "
            "set DOCPIPE_INFER_QUANTIZE=none"
        ) from exc


def export_classifier(folder: str | Path, target: Path) -> None:
    """Write the folder's Classifier to `target`: token inputs with dynamic batch and token axes, for fusion also
    neighbours (batch, k, dims) float and neighbour_mask (batch, k) int64, and logits (batch, labels) out."""
    import torch

    from pipeline.encoders.onnx import export_module
    from pipeline.infer.artefact import load_model

    model, tokenizer, config = load_model(folder, torch.device("cpu"))
    # the first row padded: the graph keeps the masked attention path that any batch may need
    sample = tokenizer(["a short one", "and a somewhat longer second sentence"], padding=True, return_tensors="pt")
    names = [n for n in _TOKENS if n in sample and (n != "token_type_ids" or n in tokenizer.model_input_names)]
    args = [sample[n] for n in names]
    axes: dict[str, dict[int, str]] = {n: {0: "batch", 1: "tokens"} for n in names}
    if config.augment == "fusion":
        k = max(config.neighbours, 1)  # with k > 0 traced, the graph attends over the neighbours it is given
        names += ["neighbours", "neighbour_mask"]
        args += [torch.randn(2, k, int(config.neighbour_dims or 0)), torch.tensor([[1] * k, [1] + [0] * (k - 1)])]
        axes.update(neighbours={0: "batch", 1: "neighbours"}, neighbour_mask={0: "batch", 1: "neighbours"})
    axes["logits"] = {0: "batch"}

    class Logits(torch.nn.Module):  # the exporter passes inputs by position; the Classifier takes them by name
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *inputs):
            return self.inner(**dict(zip(names, inputs, strict=True)))

    export_module(Logits(model), tuple(args), names, "logits", axes, target)


class GraphForward:
    """The engine's `forward` for an ONNX classifier: the engine's torch tensors in, a torch tensor of logits out.

    attention_mask None (no row padded) is fed as ones and missing token_type_ids as zeros, which is what the torch
    Classifier computes for them."""

    def __init__(self, graph: Path):
        from pipeline.encoders.onnx import load_runner

        self.graph = graph
        self._run, self._inputs = load_runner(graph)

    def __call__(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        neighbours: torch.Tensor | None = None,
        neighbour_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        import torch

        ids = np.asarray(input_ids.numpy(), dtype=np.int64)
        feeds = {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids) if attention_mask is None else attention_mask.numpy(),
            "token_type_ids": np.zeros_like(ids) if token_type_ids is None else token_type_ids.numpy(),
        }
        if "neighbours" in self._inputs:
            if neighbours is None or neighbour_mask is None:
                raise ValueError("a fusion classifier takes neighbours with their neighbour_mask")
            feeds["neighbours"] = neighbours.numpy().astype(np.float32, copy=False)
            feeds["neighbour_mask"] = neighbour_mask.numpy()
        feeds = {
            name: np.ascontiguousarray(value, dtype=np.float32 if name == "neighbours" else np.int64)
            for name, value in feeds.items()
            if name in self._inputs
        }
        return torch.from_numpy(np.asarray(self._run(feeds), dtype=np.float32))


def load_int8(folder: str | Path) -> tuple[GraphForward, Any, ArtefactConfig]:
    """(forward, tokenizer, config) of the folder's int8 classifier; ConfigError when the folder is unusable."""
    from transformers import AutoTokenizer

    config = read_config(folder)
    graph = classifier_graph(folder, "int8")
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return GraphForward(graph), tokenizer, config
