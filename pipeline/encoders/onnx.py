"""The encoder as an ONNX graph: exported once from the model folder into the data dir, quantised there on demand,
and run by ONNX Runtime or OpenVINO with the folder's own tokenizer, pooling and normalisation.

sentence-transformers' own `backend="onnx"` goes through optimum, whose ONNX releases pin transformers below the
major version docpipe runs on; the export below is torch's own ONNX exporter and ONNX Runtime's quantiser, which
need only `onnx` and `onnxruntime`. The lock, the export setting, the quantiser and the runner serve the int8
classifier too (pipeline/infer/quantized.py).

int8 differs per backend. ONNX Runtime's is dynamic: MatMul weights int8, activations quantised per batch at run
time. OpenVINO's CPU plugin does not accelerate that graph (it ran at PyTorch's speed), so its int8 is NNCF's static
post-training quantisation of the fp32 graph, weights and activations, the activations' ranges measured on
calibration passages shipped with docpipe (calibration.txt), saved as OpenVINO IR.
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


def ensure_graph(model_path: str, folder: Path, quantize: str, backend: str = "onnx") -> Path:
    """The graph for `backend` and `quantize` (none | int8) in `folder`, exported and quantised first if missing:
    an ONNX file, or for OpenVINO int8 an OpenVINO IR file (.xml, its weights in the .bin beside it)."""
    onnx_quantize = "none" if backend == "openvino" else quantize  # OpenVINO's int8 starts from the fp32 graph
    graph = build_graph(folder, onnx_quantize, lambda target: _export(model_path, target))
    if backend != "openvino" or quantize == "none":
        return graph
    target = folder / "model_ov_int8.xml"
    if not target.is_file():
        with locked(folder):
            if not target.is_file():
                _quantize_openvino(model_path, graph, target)
    return target


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


def _quantize_openvino(model_path: str, source: Path, target: Path) -> None:
    ov = _openvino()
    try:
        import nncf
    except ImportError:
        raise ConfigError("openvino int8 needs NNCF: pip install 'docpipe[openvino]'") from None
    model = ov.Core().read_model(str(source))
    names = {name for port in model.inputs for name in port.get_names()}
    tokenizer, max_length = tokenizer_for(model_path)
    passages = calibration_passages()
    items = [
        feeds(
            tokenizer(passages[i : i + 8], padding=True, truncation=True, max_length=max_length, return_tensors="np"),
            names,
        )
        for i in range(0, len(passages), 8)
    ]
    quantized = nncf.quantize(model, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(items))
    # the .xml names no weights file: OpenVINO reads the .bin of the same stem, so both are written under a
    # temporary stem and the .xml, which marks the export finished, is renamed last
    partial_xml = target.with_name(target.stem + ".partial.xml")
    ov.save_model(quantized, str(partial_xml), compress_to_fp16=False)
    os.replace(partial_xml.with_suffix(".bin"), target.with_suffix(".bin"))
    os.replace(partial_xml, target)


def calibration_passages() -> list[str]:
    """The calibration sentences alone, in threes and in eights: short and long inputs both set the ranges."""
    lines = [
        line.strip()
        for line in (Path(__file__).with_name("calibration.txt")).read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return [" ".join(lines[i : i + size]) for size in (1, 3, 8) for i in range(0, len(lines), size)]


def tokenizer_for(model_path: str):
    """The folder's tokenizer and the longest input its encoder takes (the folder's cap, else up to 512)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    layout = read_layout(Path(model_path))
    return tokenizer, int(layout.max_length or min(tokenizer.model_max_length, 512))


def feeds(batch, inputs: set[str]) -> dict[str, np.ndarray]:
    """A tokenised batch as a graph's int64 inputs (token_type_ids zeros when the graph takes them)."""
    out = {k: np.asarray(v, dtype=np.int64) for k, v in batch.items() if k in inputs}
    if "token_type_ids" in inputs and "token_type_ids" not in out:
        out["token_type_ids"] = np.zeros_like(out["input_ids"])
    return out


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


def _openvino():
    try:
        import openvino as ov
    except ImportError:
        raise ConfigError(
            "the openvino encoder backend needs the openvino package: pip install 'docpipe[openvino]'"
        ) from None
    return ov


def _openvino_runner(graph: Path) -> tuple[Callable[[dict], np.ndarray], set[str]]:
    ov = _openvino()
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
        self.layout: Layout = read_layout(Path(model_path))
        self.tokenizer, self.max_length = tokenizer_for(model_path)
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
            vectors = self.encode_batch(batch)
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        assert out is not None
        return out

    def encode_batch(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        """One padded batch of token ids (input_ids, attention_mask[, token_type_ids]) to pooled vectors."""
        given = feeds(batch, self._inputs)
        hidden = np.asarray(self._run(given), dtype=np.float32)
        if self.layout.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = given["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        # unit length whatever the folder says, as pipeline.embed.Encoder asks sentence-transformers for
        pooled = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return np.ascontiguousarray(pooled, dtype=np.float32)
