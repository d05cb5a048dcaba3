"""The batched inference engine: tokenised requests in, one output row per request, in request order.

Requests are packed by a token budget (pipeline.infer.batching), run under inference_mode with
autocast on CUDA (bf16 where supported, else fp16; fp32 on the CPU), and copied host-to-device
from pinned memory without blocking, so the next batch is assembled while the GPU works.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

from pipeline.infer.batching import PaddingReport, pack_batches, padded_size


@dataclass
class Request:
    """One tokenised input; token_type_ids only for models that use segments (BERT pairs)."""

    input_ids: list[int]
    token_type_ids: list[int] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)


def resolve_device(device: str):
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def autocast_dtype(device) -> object | None:
    """bf16 where the GPU has it, fp16 on older GPUs, None (plain fp32) on the CPU."""
    import torch

    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class InferenceEngine:
    """Runs `forward(**tensors) -> (rows, width)` over packed batches.

    `forward` receives input_ids, attention_mask, token_type_ids (when the requests carry them)
    and every per-request extra array sliced to the batch (e.g. neighbour vectors for fusion).
    """

    def __init__(self, forward: Callable, pad_token_id: int, device: str = "auto", token_budget: int = 8192,
                 max_batch: int | None = None, max_padding: float | None = 0.2):
        self.forward = forward
        self.pad_token_id = int(pad_token_id or 0)
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.token_budget = token_budget
        self.max_batch = max_batch
        self.max_padding = max_padding
        self.last_report = PaddingReport()

    def run(self, requests: list[Request], extras: dict[str, np.ndarray] | None = None,
            on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Rows of `forward`'s output in request order; on_batch(rows done) after each batch (heartbeats)."""
        import torch

        started = time.perf_counter()
        report = PaddingReport(sequences=len(requests))
        lengths = [max(len(r), 1) for r in requests]
        batches = pack_batches(lengths, self.token_budget, self.max_batch, self.max_padding)
        outputs: np.ndarray | None = None
        dtype = autocast_dtype(self.device)
        amp = torch.autocast(self.device.type, dtype=dtype) if dtype is not None else nullcontext()
        with torch.inference_mode(), amp:
            for batch in batches:
                tensors = self._tensors(requests, batch, lengths, extras)
                result = self.forward(**tensors).float().cpu().numpy()
                if outputs is None:
                    outputs = np.zeros((len(requests), result.shape[1]), dtype=np.float32)
                outputs[batch] = result  # scatter back: row i answers request i
                report.batches += 1
                report.batch_sizes.append(len(batch))
                report.real_tokens += sum(lengths[i] for i in batch)
                report.padded_tokens += padded_size(lengths, batch)
                if on_batch is not None:
                    on_batch(sum(report.batch_sizes))
        report.seconds = time.perf_counter() - started
        self.last_report = report
        return outputs if outputs is not None else np.zeros((0, 0), dtype=np.float32)

    def _tensors(self, requests: list[Request], batch: list[int], lengths: list[int],
                 extras: dict[str, np.ndarray] | None) -> dict:
        return to_device(collate(requests, batch, self.pad_token_id, extras), self.device)


def collate(requests: list[Request], batch, pad_token_id: int, extras: dict[str, np.ndarray] | None = None) -> dict:
    """Host arrays for one batch, padded to its longest member; extras are sliced to the batch rows."""
    batch = list(batch)
    width = max(max(len(requests[i]), 1) for i in batch)
    ids = np.full((len(batch), width), pad_token_id, dtype=np.int64)
    mask = np.zeros((len(batch), width), dtype=np.int64)
    types = np.zeros((len(batch), width), dtype=np.int64) if requests[batch[0]].token_type_ids else None
    for row, i in enumerate(batch):
        req = requests[i]
        n = len(req.input_ids)
        ids[row, :n] = req.input_ids
        mask[row, :n] = 1
        if types is not None and req.token_type_ids:
            types[row, :n] = req.token_type_ids
    host = {"input_ids": ids, "attention_mask": mask}
    if types is not None:
        host["token_type_ids"] = types
    for name, values in (extras or {}).items():
        host[name] = np.ascontiguousarray(values[batch])
    return host


def to_device(host: dict[str, np.ndarray], device) -> dict:
    import torch

    out = {}
    for name, array in host.items():
        tensor = torch.from_numpy(array)
        # page-locked memory makes the copy asynchronous; the stream orders it before the kernels using it
        out[name] = tensor.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else tensor
    return out


def tokenize(tokenizer, texts: list[str], max_length: int) -> list[Request]:
    """Truncated, unpadded token ids (with the model's special tokens) for single texts."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False,
                    return_attention_mask=False)
    types = enc.get("token_type_ids") if "token_type_ids" in tokenizer.model_input_names else None
    return [Request(ids, types[i] if types else None) for i, ids in enumerate(enc["input_ids"])]


def mean_pool(hidden, attention_mask):
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-6)
