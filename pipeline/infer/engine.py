"""The batched inference engine: tokenised requests in, one output row per request, in request order.

Requests are packed by a token budget (pipeline.infer.batching), run under inference_mode in bf16 on
CUDA (fp16 where bf16 is missing; fp32 on the CPU), and copied host-to-device from pinned memory
without blocking, so the next batch is assembled while the GPU works.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING

import numpy as np

from pipeline.devices import resolve_device
from pipeline.infer.batching import PaddingReport, pack_batches, padded_size

if TYPE_CHECKING:
    import torch


@dataclass
class Request:
    """One tokenised input; token_type_ids only for models that use segments (BERT pairs)."""

    input_ids: list[int]
    token_type_ids: list[int] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


def for_inference(model, device, compile: bool = False):
    """The module in eval mode on `device`, in the half dtype on CUDA. Such a model runs without autocast
    (InferenceEngine(..., autocast=False)): autocast would run every LayerNorm in fp32 and cast its input
    and output, which cost an H100 more time than the matrix products; bf16 LayerNorm still sums in fp32.

    compile (DOCPIPE_INFER_COMPILE) hands it to torch.compile with dynamic shapes, for long-lived workers:
    the first batches pay tens of seconds of compiling, later ones run fused kernels (bias, GELU and
    norms folded into fewer passes over memory). On the CPU the weights are frozen into the graph, which
    lets oneDNN keep them prepacked; a CUDA model is compiled as measured on the H100 (bench/infer.py
    --compile), without freezing. Outputs match the eager model to float rounding."""
    dtype = autocast_dtype(device)
    model = model.to(device).eval()
    if dtype is not None:
        model = model.to(dtype)
    if not compile:
        return model
    import torch

    return torch.compile(model, dynamic=True, options={"freezing": True} if device.type == "cpu" else None)


def default_token_budget(device) -> int:
    """Padded tokens per batch: a GPU needs big batches to outrun its kernel launches (on an H100 the forward
    pass over BBC paragraphs went from 1.2M tokens/s at 8,192 to 4.1M at 131,072); a CPU gains nothing past a
    few thousand."""
    return 131_072 if device.type == "cuda" else 8192


def autocast_dtype(device) -> torch.dtype | None:
    """bf16 where the GPU has it, fp16 on older GPUs, None (plain fp32) on the CPU."""
    import torch

    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class InferenceEngine:
    """Runs `forward(**tensors) -> (rows, width)` over packed batches.

    `forward` receives input_ids, attention_mask (None when no row of the batch is padded),
    token_type_ids (when the requests carry them) and every per-request extra array sliced to the batch (e.g.
    neighbour vectors for fusion).
    """

    def __init__(
        self,
        forward: Callable,
        pad_token_id: int,
        device: str = "auto",
        token_budget: int = 0,
        max_batch: int | None = None,
        max_padding: float | None = 0.2,
        autocast: bool = True,
    ):
        self.forward = forward
        self.pad_token_id = int(pad_token_id or 0)
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.token_budget = token_budget or default_token_budget(self.device)
        self.max_batch = max_batch
        self.max_padding = max_padding
        self.autocast = autocast  # False for a model already in its inference dtype (for_inference)
        self.last_report = PaddingReport()

    def run(
        self,
        requests: list[Request],
        extras: dict[str, np.ndarray] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Rows of `forward`'s output in request order; on_batch(rows done) after each batch (heartbeats).

        On CUDA each batch's result is copied back into pinned memory without blocking, and the host
        waits for it only after the next batch is queued: the GPU computes batch i while the host
        assembles batch i+1, instead of idling through every collate and copy.
        """
        import torch

        started = time.perf_counter()
        report = PaddingReport(sequences=len(requests))
        lengths = [max(len(r), 1) for r in requests]
        batches = pack_batches(lengths, self.token_budget, self.max_batch, self.max_padding)
        outputs: np.ndarray | None = None
        cuda = self.device.type == "cuda"
        pending = None

        def land(batch, host, done) -> None:
            nonlocal outputs
            if done is not None:
                done.synchronize()
            result = host.numpy()
            if outputs is None:
                outputs = np.zeros((len(requests), result.shape[1]), dtype=np.float32)
            outputs[batch] = result  # scatter back: row i answers request i
            report.batches += 1
            report.batch_sizes.append(len(batch))
            report.real_tokens += sum(lengths[i] for i in batch)
            report.padded_tokens += padded_size(lengths, batch)
            if on_batch is not None:
                on_batch(sum(report.batch_sizes))

        dtype = autocast_dtype(self.device) if self.autocast else None
        amp = torch.autocast(self.device.type, dtype=dtype) if dtype is not None else nullcontext()
        with torch.inference_mode(), amp:
            for batch in batches:
                result = self.forward(**self._tensors(requests, batch, lengths, extras)).float()
                if not cuda:
                    land(batch, result, None)
                    continue
                host = torch.empty(result.shape, dtype=torch.float32, pin_memory=True)
                host.copy_(result, non_blocking=True)
                done = torch.cuda.Event()
                done.record()
                if pending is not None:
                    land(*pending)
                pending = (batch, host, done)
            if pending is not None:
                land(*pending)
        report.seconds = time.perf_counter() - started
        self.last_report = report
        return outputs if outputs is not None else np.zeros((0, 0), dtype=np.float32)

    def _tensors(
        self, requests: list[Request], batch: list[int], lengths: list[int], extras: dict[str, np.ndarray] | None
    ) -> dict:
        host = collate(requests, batch, self.pad_token_id, extras)
        if host["attention_mask"].all():
            # no row is padded: without a mask, transformers need not ask the GPU whether the mask is all
            # ones (a sync that stalls the host's next batch) and attention may take its unmasked kernel
            host["attention_mask"] = None
        return to_device(host, self.device)


def collate(requests: list[Request], batch, pad_token_id: int, extras: dict[str, np.ndarray] | None = None) -> dict:
    """Host arrays for one batch, padded to its longest member; extras are sliced to the batch rows.

    Filled with whole-array operations rather than row by row: a GPU batch holds up to 131,072 tokens,
    and the host assembles it while the GPU runs the one before.
    """
    batch = list(batch)
    rows = [requests[i] for i in batch]
    lengths = np.fromiter((len(r.input_ids) for r in rows), dtype=np.int64, count=len(rows))
    filled = np.arange(max(int(lengths.max()), 1)) < lengths[:, None]  # row-major, like the flat ids
    count = int(lengths.sum())
    ids = np.full(filled.shape, pad_token_id, dtype=np.int64)
    ids[filled] = np.fromiter(chain.from_iterable(r.input_ids for r in rows), dtype=np.int64, count=count)
    host = {"input_ids": ids, "attention_mask": filled.astype(np.int64)}
    if rows[0].token_type_ids:
        types = np.zeros(filled.shape, dtype=np.int64)
        types[filled] = np.fromiter(
            chain.from_iterable(r.token_type_ids or [0] * len(r.input_ids) for r in rows), dtype=np.int64, count=count
        )
        host["token_type_ids"] = types
    for name, values in (extras or {}).items():
        host[name] = np.ascontiguousarray(values[batch])
    return host


def to_device(host: dict[str, np.ndarray], device) -> dict:
    import torch

    out = {}
    for name, array in host.items():
        if array is None:
            out[name] = None
            continue
        tensor = torch.from_numpy(array)
        # page-locked memory makes the copy asynchronous; the stream orders it before the kernels using it
        out[name] = tensor.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else tensor
    return out


def tokenize(tokenizer, texts: list[str], max_length: int) -> list[Request]:
    """Truncated, unpadded token ids (with the model's special tokens) for single texts."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False, return_attention_mask=False)
    types = enc.get("token_type_ids") if "token_type_ids" in tokenizer.model_input_names else None
    return [Request(ids, types[i] if types else None) for i, ids in enumerate(enc["input_ids"])]


def mean_pool(hidden, attention_mask):
    """fp32 whatever the hidden states' dtype: a sum over hundreds of positions in bf16 loses precision."""
    hidden = hidden.float()
    if attention_mask is None:
        return hidden.mean(1)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-6)
