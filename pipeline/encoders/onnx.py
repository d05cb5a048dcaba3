"""The encoder as an ONNX graph: exported once from the model folder into the data dir, quantised there on demand,
and run by ONNX Runtime or OpenVINO with the folder's own tokenizer, pooling and normalisation.

sentence-transformers' own `backend="onnx"` goes through optimum, whose ONNX releases pin transformers below the
major version docpipe runs on; the export below is torch's own ONNX exporter and ONNX Runtime's quantiser, which
need only `onnx` and `onnxruntime`. The lock, the export setting, the quantiser and the runner serve the int8
classifier too (pipeline/infer/quantized.py).
"""

from __future__ import annotations

import fcntl
import os
import threading
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from pipeline.devices import compute_threads
from pipeline.encoders.layout import Layout, read_layout
from pipeline.errors import ConfigError

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_lock = threading.Lock()


def cpu_has_vnni() -> bool:
    """Whether int8 dot products run natively (VNNI/AMX): without them ONNX Runtime's u8s8 kernels can saturate,
    and its documentation asks for 7-bit weights (reduce_range)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


@contextmanager
def locked(folder: Path):
    """One exporter per export folder across processes: two workers starting together wait for one export."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def export_folder(cache_root: Path, model_name: str, fingerprint: str) -> Path:
    """Where one model's exports live: a changed model (weights, pooling, length cap) gets a folder of its own."""
    return Path(cache_root) / f"{model_name}-{fingerprint}"


def ensure_graph(model_path: str, folder: Path, quantize: str) -> Path:
    """The ONNX file for `quantize` (none | int8) in `folder`, exported and quantised first if missing."""
    return build_graph(folder, quantize, lambda target: _export(model_path, target))


def build_graph(folder: Path, quantize: str, export: Callable[[Path], None], stem: str = "model") -> Path:
    """`folder`/`stem`.onnx for quantize none, its int8 form for int8: `export(path)` writes the fp32 graph when it
    is missing, int8 is quantised from it. Under the folder's lock, so processes that start together export once;
    each file is written beside its name and renamed, so a crash mid-export leaves no file that looks finished."""
    fp32 = folder / f"{stem}.onnx"
    int8 = f"{stem}_qint8.onnx" if cpu_has_vnni() else f"{stem}_qint8_rr.onnx"
    wanted = fp32 if quantize == "none" else folder / int8
    if wanted.is_file():
        return wanted
    with locked(folder):
        if not fp32.is_file():
            partial = fp32.with_suffix(".partial")
            export(partial)
            os.replace(partial, fp32)
        if quantize != "none" and not wanted.is_file():
            quantize_int8(fp32, wanted, reduce_range=not cpu_has_vnni())
    return wanted


def export_module(module, sample: tuple, input_names: list[str], output: str, axes: dict, target: Path) -> None:
    """torch's TorchScript-based exporter (dynamo=False), opset 17, with `axes` dynamic: the one export setting
    docpipe's graphs share."""
    import torch

    # the tracer warns about shape checks it freezes; they concern causal and cached attention, not an encoder's
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            sample,
            str(target),
            input_names=input_names,
            output_names=[output],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def _export(model_path: str, target: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    model = AutoModel.from_pretrained(model_path, local_files_only=True).eval()
    sample = tokenizer(["a short one", "and a somewhat longer second sentence"], padding=True, return_tensors="pt")
    names = [n for n in _INPUTS if n in sample]

    class Hidden(torch.nn.Module):  # keyword arguments: the exporter passes positionally, the model's order varies
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            return self.inner(**dict(zip(names, args, strict=True))).last_hidden_state

    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]}
    export_module(Hidden(model), tuple(sample[n] for n in names), names, "last_hidden_state", axes, target)


def quantize_int8(source: Path, target: Path, reduce_range: bool) -> None:
    """Dynamic int8: weights of the MatMuls quantised per output channel, activations per batch at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    partial = target.with_name(target.stem + ".partial.onnx")
    quantize_dynamic(
        str(source),
        str(partial),
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=reduce_range,
        op_types_to_quantize=["MatMul"],
    )
    os.replace(partial, target)


def load_runner(graph: Path, backend: str = "onnx") -> tuple[Callable[[dict], np.ndarray], set[str]]:
    """(run(feeds) -> first output, the graph's input names) on the CPU, by ONNX Runtime (onnx) or OpenVINO; one
    graph compile at a time per process: they are memory-hungry."""
    make = _openvino_runner if backend == "openvino" else _onnxruntime_runner
    with _lock:
        return make(graph)


def _onnxruntime_runner(graph: Path) -> tuple[Callable[[dict], np.ndarray], set[str]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = compute_threads()  # 0: one per core
    session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    return (lambda feeds: session.run(None, feeds)[0]), names


def _openvino_runner(graph: Path) -> tuple[Callable[[dict], np.ndarray], set[str]]:
    try:
        import openvino as ov
    except ImportError:
        raise ConfigError(
            "the openvino encoder backend needs the openvino package: pip install 'docpipe[openvino]'"
        ) from None
    core = ov.Core()
    model = core.read_model(str(graph))
    names = {name for port in model.inputs for name in port.get_names()}
    config: dict = {"PERFORMANCE_HINT": "LATENCY"}
    if threads := compute_threads():
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(model, "CPU", config)
    return (lambda feeds: compiled(feeds)[0]), names


class GraphEncoder:
    """Texts in, (n, dims) float32 vectors out, as sentence-transformers computes them for the same folder."""

    def __init__(self, model_path: str, graph: Path, backend: str, batch_size: int = 64):
        from transformers import AutoTokenizer

        self.layout: Layout = read_layout(Path(model_path))
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
        self.max_length = int(self.layout.max_length or min(self.tokenizer.model_max_length, 512))
        self.batch_size = batch_size
        self._run, self._inputs = load_runner(graph, backend)

    def encode(self, texts: list[str]) -> np.ndarray:
        # longest first, as sentence-transformers does, so a batch pads to near its own length
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out: np.ndarray | None = None
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            batch = self.tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="np",
            )
            vectors = self.encode_batch({k: v for k, v in batch.items() if k in self._inputs})
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        assert out is not None
        return out

    def encode_batch(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """One padded batch of token ids (input_ids, attention_mask[, token_type_ids]) to pooled vectors."""
        feeds = {k: np.asarray(v, dtype=np.int64) for k, v in batch.items()}
        if "token_type_ids" in self._inputs and "token_type_ids" not in feeds:
            feeds["token_type_ids"] = np.zeros_like(feeds["input_ids"])
        hidden = np.asarray(self._run(feeds), dtype=np.float32)
        if self.layout.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = feeds["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        # unit length whatever the folder says, as pipeline.embed.Encoder asks sentence-transformers for
        pooled = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return np.ascontiguousarray(pooled, dtype=np.float32)
