"""The batched inference engine: tokenised requests in, one output row per request, in request order.

Requests are packed by a token budget (pipeline.infer.batching), run under inference_mode in bf16 on
CUDA (fp16 where bf16 is missing; fp32 on the CPU), and copied host-to-device from pinned memory
without blocking. Tokenising and collating run in a background thread (pipeline.infer.collate), a few
batches ahead of the device, and texts stream through in windows sorted by length, so the host prepares
window k+1 while the device runs window k. With static shapes (and optionally captured CUDA graphs) a few
batch shapes serve any input. Each run leaves an EngineStats in `last_report`: per-stage seconds and the
side that bounds it.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.devices import compute_threads, resolve_device
from pipeline.infer.batching import EngineStats, PaddingReport, Request, pack_batches, pack_static, padded_size
from pipeline.infer.collate import Batch, Prefetcher, TokenBlock, ahead, as_tensors, batches_of
from pipeline.infer.graphs import CudaGraphs

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


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
    if device.type == "cpu":
        compute_threads()
    model = use_sdpa(model).to(device).eval()
    if dtype is not None:
        model = model.to(dtype)
    if not compile:
        return model
    import torch

    return torch.compile(model, dynamic=True, options={"freezing": True} if device.type == "cpu" else None)


def _settings():
    # read only when a caller leaves a knob unset: a benchmark that sets them all runs without pydantic
    from pipeline.config import get_settings

    return get_settings().infer


def use_sdpa(model):
    """The model with torch's scaled_dot_product_attention (flash or memory-efficient kernels on a GPU) where its
    transformers class supports it and it was loaded with the eager one; otherwise as it is."""
    config = getattr(model, "config", None)
    setter = getattr(model, "set_attn_implementation", None)
    if config is None or setter is None or getattr(config, "_attn_implementation", None) != "eager":
        return model
    try:
        setter("sdpa")
    except (ValueError, ImportError) as exc:  # the class has no SDPA path: eager attention it is
        log.debug("%s keeps eager attention: %s", type(model).__name__, exc)
    return model


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

    prefetch: batches collated ahead in a background thread (0: collate inline, the engine's first path);
    window: texts tokenised and sorted together by run_texts; tokenize_threads: windows tokenised at once;
    static_shapes: batches padded to width buckets and fixed row counts (pipeline.infer.batching.pack_static);
    cuda_graphs: each static shape captured once as a CUDA graph and replayed (implies static shapes).
    None takes the DOCPIPE_INFER_* setting.
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
        prefetch: int | None = None,
        window: int | None = None,
        tokenize_threads: int | None = None,
        static_shapes: bool | None = None,
        cuda_graphs: bool | None = None,
    ):
        infer: Any = _settings() if None in (prefetch, window, tokenize_threads, static_shapes, cuda_graphs) else None
        self.forward = forward
        self.pad_token_id = int(pad_token_id or 0)
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.token_budget = token_budget or default_token_budget(self.device)
        self.max_batch = max_batch
        self.max_padding = max_padding
        self.autocast = autocast  # False for a model already in its inference dtype (for_inference)
        self.prefetch = int(infer.prefetch if prefetch is None else prefetch)
        self.window = max(1, int(infer.window if window is None else window))
        threads = infer.tokenize_threads if tokenize_threads is None else tokenize_threads
        self.tokenize_threads = max(1, int(threads))
        graphs = bool(infer.cuda_graphs if cuda_graphs is None else cuda_graphs)
        self.graphs = CudaGraphs(forward) if graphs and self.device.type == "cuda" else None
        static = infer.static_shapes if static_shapes is None else static_shapes
        self.static_shapes = graphs or bool(static)
        self.last_report: PaddingReport = EngineStats()

    def run(
        self,
        requests: list[Request],
        extras: dict[str, np.ndarray] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Rows of `forward`'s output in request order; on_batch(rows done) after each batch (heartbeats)."""
        if self.prefetch <= 0 and not self.static_shapes:
            return self._run_inline(requests, extras, on_batch)

        def make() -> tuple[TokenBlock, float]:
            types = [r.token_type_ids for r in requests]
            return TokenBlock.from_lists([r.input_ids for r in requests], types if any(types) else None), 0.0

        return self._execute(len(requests), [make], extras, on_batch)

    def run_ids(
        self,
        ids: list[list[int]],
        wrap: tuple[list[int], list[int]] = ([], []),
        max_length: int | None = None,
        extras: dict[str, np.ndarray] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Rows for pre-tokenised inputs (e.g. the token ids chunking kept), with no tokenising here. wrap: the
        model's special tokens before and after each input (pipeline.infer.collate.special_tokens); ids that
        already hold them take the default. max_length cuts each input's own ids so the whole fits."""
        return self._execute(
            len(ids), [lambda: (TokenBlock.from_lists(ids, wrap=wrap, max_length=max_length), 0.0)], extras, on_batch
        )

    def run_texts(
        self,
        texts: list[str],
        tokenizer,
        max_length: int,
        extras: dict[str, np.ndarray] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Rows for single texts, tokenised as pipeline.infer.inputs.text_requests does it (the same ids), but in
        windows of `window` texts, in the background, while the device runs the windows before."""
        from pipeline.infer.collate import special_tokens
        from pipeline.infer.inputs import token_ids

        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        before, after = special_tokens(tokenizer)
        limit = max_length - len(before) - len(after)
        local = threading.local()
        concurrent = self.tokenize_threads > 1 and len(texts) > self.window

        def own_tokenizer():
            # a fast tokenizer refuses concurrent calls that set truncation ("Already borrowed"): one per thread
            if not hasattr(local, "tokenizer"):
                local.tokenizer = copy.deepcopy(tokenizer) if concurrent else tokenizer
            return local.tokenizer

        def window(first: int) -> Callable[[], tuple[TokenBlock, float]]:
            def make() -> tuple[TokenBlock, float]:
                started = time.perf_counter()
                ids = token_ids(own_tokenizer(), texts[first : first + self.window], limit)
                return TokenBlock.from_lists(ids, wrap=(before, after), first=first), time.perf_counter() - started

            return make

        return self._execute(len(texts), [window(i) for i in range(0, len(texts), self.window)], extras, on_batch)

    def _plan(self, lengths: np.ndarray) -> list[tuple[list[int], int, int]]:
        if self.static_shapes:
            return pack_static(lengths.tolist(), self.token_budget, self.max_padding)
        batches = pack_batches(lengths.tolist(), self.token_budget, self.max_batch, self.max_padding)
        return [(b, max(int(lengths[b].max()), 1), len(b)) for b in batches]

    def _batches(self, windows: list[Callable[[], tuple[TokenBlock, float]]], extras) -> Iterator[Batch]:
        """Every window's batches, in order; with several tokenising threads the next windows are made ahead."""
        cuda = self.device.type == "cuda"
        if self.tokenize_threads > 1 and len(windows) > 1:
            pool = ThreadPoolExecutor(self.tokenize_threads, thread_name_prefix="docpipe-tokenize")
            made: Iterable = ahead(pool, windows, self.tokenize_threads)
        else:
            pool, made = None, (make() for make in windows)
        try:
            for block, tokenize_seconds in made:
                for batch in batches_of(
                    block, self._plan, self.pad_token_id, extras, self.static_shapes, tokenize_seconds
                ):
                    # tensors made here, in the background; on CUDA page-locked, so the copy to it is asynchronous
                    started = time.perf_counter()
                    batch.host = as_tensors(batch.host, cuda)
                    batch.extras = as_tensors(batch.extras, cuda)
                    batch.collate_seconds += time.perf_counter() - started
                    yield batch
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)

    def _execute(self, total: int, windows, extras, on_batch) -> np.ndarray:
        import torch

        stats = EngineStats(sequences=total)
        started = time.perf_counter()
        cuda = self.device.type == "cuda"
        outputs: np.ndarray | None = None
        source = self._batches(windows, extras)
        feeder = Prefetcher(source, self.prefetch) if self.prefetch > 0 else None
        pending = None

        def land(batch: Batch, host, events) -> None:
            nonlocal outputs
            began = time.perf_counter()
            if events is not None:
                events[2].synchronize()
                stats.device_seconds += events[0].elapsed_time(events[1]) / 1000
                stats.copy_seconds += events[1].elapsed_time(events[2]) / 1000
            result = host.numpy()
            if outputs is None:
                outputs = np.zeros((total, result.shape[1]), dtype=np.float32)
            outputs[batch.index] = result[: len(batch.index)]  # scatter back; rows past them fill a static shape
            stats.copy_seconds += time.perf_counter() - began
            stats.batches += 1
            stats.batch_sizes.append(len(batch.index))
            stats.real_tokens += batch.real_tokens
            stats.padded_tokens += batch.padded_tokens
            if on_batch is not None:
                on_batch(sum(stats.batch_sizes))

        dtype = autocast_dtype(self.device) if self.autocast else None
        amp = torch.autocast(self.device.type, dtype=dtype) if dtype is not None else nullcontext()
        try:
            with torch.inference_mode(), amp:
                for batch in feeder if feeder is not None else source:
                    stats.tokenize_seconds += batch.tokenize_seconds
                    stats.collate_seconds += batch.collate_seconds
                    tensors = {**batch.host, **batch.extras}
                    if not cuda:
                        began = time.perf_counter()
                        result = self.forward(**tensors).float()
                        stats.device_seconds += time.perf_counter() - began
                        land(batch, result, None)
                        continue
                    events = tuple(torch.cuda.Event(enable_timing=True) for _ in range(3))
                    events[0].record()
                    tensors = {k: v if v is None else v.to(self.device, non_blocking=True) for k, v in tensors.items()}
                    if self.graphs is not None and self.graphs.replay(tensors) is not None:
                        result = self.graphs.output
                        stats.graphed_batches += 1
                    else:
                        result = self.forward(**tensors).float()
                    events[1].record()
                    host = torch.empty(result.shape, dtype=torch.float32, pin_memory=True)
                    host.copy_(result, non_blocking=True)
                    events[2].record()
                    if pending is not None:
                        land(*pending)
                    pending = (batch, host, events)
                if pending is not None:
                    land(*pending)
        finally:
            if feeder is not None:
                feeder.close()
                stats.starved_seconds = feeder.waited
        stats.seconds = time.perf_counter() - started
        self.last_report = stats
        return outputs if outputs is not None else np.zeros((0, 0), dtype=np.float32)

    def _run_inline(self, requests, extras, on_batch) -> np.ndarray:
        """The engine's first path (prefetch 0): all requests sorted at once, each batch collated on the calling
        thread between device batches; on CUDA each result is copied back into pinned memory without blocking,
        and the host waits for it only after the next batch is queued."""
        import torch

        started = time.perf_counter()
        report = EngineStats(sequences=len(requests))
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
                result = self.forward(**self._tensors(requests, batch, extras)).float()
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

    def _tensors(self, requests: list[Request], batch: list[int], extras: dict[str, np.ndarray] | None) -> dict:
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
