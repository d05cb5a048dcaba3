"""Host side of the engine: token ids kept flat, batches gathered from them in whole-array operations, and a
background thread that tokenises and collates the next batches while the device runs the current one.

A TokenBlock holds many requests as one flat id array plus offsets, so collating a batch is one gather
instead of a Python loop over rows; the special tokens of a model ([CLS] ... [SEP]) are added there, so
content ids from chunking are fed as they are (tokenise once).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain

import numpy as np


@dataclass
class TokenBlock:
    """Requests as flat ids: request i is ids[starts[i] : starts[i] + lengths[i]]; `index` maps the block's
    rows to positions in the caller's request list (a window of a stream starts past zero)."""

    ids: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    index: np.ndarray
    types: np.ndarray | None = None  # flat token type ids, only for models that read segments

    def __len__(self) -> int:
        return len(self.lengths)

    @classmethod
    def from_lists(
        cls,
        ids: Sequence[Sequence[int]],
        types: Sequence[Sequence[int] | None] | None = None,
        wrap: tuple[Sequence[int], Sequence[int]] = ((), ()),
        max_length: int | None = None,
        first: int = 0,
    ) -> TokenBlock:
        """A block of `ids` (request i at position first + i). wrap: ids put before and after each request (the
        model's special tokens), the request's own ids cut so that the whole fits max_length."""
        before, after = list(wrap[0]), list(wrap[1])
        room = None if max_length is None else max_length - len(before) - len(after)
        if room is not None and room < 0:
            raise ValueError(f"max_length {max_length} leaves no room between the special tokens")
        own = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        kept = own if room is None else np.minimum(own, room)
        rows = [x if room is None or len(x) <= room else x[:room] for x in ids]
        lengths = kept + len(before) + len(after)
        starts = np.zeros(len(ids), dtype=np.int64)
        if len(ids):
            np.cumsum(lengths[:-1], out=starts[1:])
        total = int(lengths.sum())
        flat = _flatten(rows, kept, before, after, total)
        flat_types = None
        if types is not None and any(t for t in types):
            typed = [list(t) if t else [0] * len(x) for t, x in zip(types, ids)]
            typed = [t if room is None or len(t) <= room else t[:room] for t in typed]
            flat_types = _flatten(typed, kept, [0] * len(before), [0] * len(after), total)
        index = np.arange(first, first + len(ids), dtype=np.int64)
        return cls(flat, starts, lengths, index, flat_types)


def _flatten(rows, kept: np.ndarray, before: list[int], after: list[int], total: int) -> np.ndarray:
    if not before and not after:
        return np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=total)
    return np.fromiter(chain.from_iterable(chain(before, r, after) for r in rows), dtype=np.int64, count=total)


def gather(
    block: TokenBlock, rows: Sequence[int], width: int, pad_token_id: int, fill_rows: int = 0, mask_always=False
) -> dict[str, np.ndarray | None]:
    """input_ids and attention_mask (and token_type_ids) of block rows `rows`, padded to `width`, with
    `fill_rows` dummy rows after them (one real token each) to reach a static batch shape. The mask is None
    when no row is padded, unless mask_always (a captured graph needs the same inputs every time)."""
    picked = np.asarray(rows, dtype=np.int64)
    lengths = block.lengths[picked]
    starts = block.starts[picked]
    if fill_rows:
        lengths = np.concatenate([lengths, np.ones(fill_rows, dtype=np.int64)])
        starts = np.concatenate([starts, np.zeros(fill_rows, dtype=np.int64)])  # a copy of some first token
    positions = np.arange(width, dtype=np.int64)
    filled = positions < lengths[:, None]
    where = np.where(filled, starts[:, None] + positions, 0)
    ids = np.where(filled, block.ids[where], pad_token_id) if len(block.ids) else np.full(filled.shape, pad_token_id)
    host: dict[str, np.ndarray | None] = {"input_ids": ids.astype(np.int64, copy=False)}
    host["attention_mask"] = None if filled.all() and not mask_always else filled.astype(np.int64)
    if block.types is not None:
        host["token_type_ids"] = np.where(filled, block.types[where], 0).astype(np.int64, copy=False)
    return host


@dataclass
class Batch:
    """One collated batch: the request positions its first rows answer, host arrays, and its accounting."""

    index: np.ndarray
    host: dict[str, np.ndarray | None]
    real_tokens: int
    padded_tokens: int
    collate_seconds: float
    tokenize_seconds: float = 0.0  # the tokenising of the window, carried by that window's first batch
    extras: dict[str, np.ndarray] = field(default_factory=dict)


Plan = Callable[[np.ndarray], list[tuple[list[int], int, int]]]


def batches_of(
    block: TokenBlock,
    plan: Plan,
    pad_token_id: int,
    extras: dict[str, np.ndarray] | None = None,
    static: bool = False,
    tokenize_seconds: float = 0.0,
) -> Iterator[Batch]:
    """The block's batches as `plan` (lengths -> [(rows, width, row count)]) packs them. static: every batch
    is filled up to its row count and always carries a mask, so each width bucket has one shape."""
    for k, (rows, width, count) in enumerate(plan(block.lengths)):
        started = time.perf_counter()
        fill = max(count - len(rows), 0) if static else 0
        host = gather(block, rows, width, pad_token_id, fill, mask_always=static)
        index = block.index[np.asarray(rows, dtype=np.int64)]
        sliced = {name: np.ascontiguousarray(values[index]) for name, values in (extras or {}).items()}
        if fill:
            sliced = {n: np.concatenate([v, np.zeros((fill, *v.shape[1:]), v.dtype)]) for n, v in sliced.items()}
        yield Batch(
            index=index,
            host=host,
            real_tokens=int(block.lengths[rows].sum()),
            padded_tokens=(len(rows) + fill) * width,
            collate_seconds=time.perf_counter() - started,
            tokenize_seconds=tokenize_seconds if k == 0 else 0.0,
            extras=sliced,
        )


_DONE = object()


class Prefetcher:
    """Runs an iterator of batches in a daemon thread, `depth` items ahead of the consumer (a bounded queue,
    so host memory stays bounded); an exception in the thread is raised in the consumer. close() stops the
    thread after the item it is working on, e.g. when the consumer fails."""

    def __init__(self, source: Iterable, depth: int):
        self._queue: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._stop = threading.Event()
        self.waited = 0.0  # consumer seconds spent waiting for the producer
        self._thread = threading.Thread(target=self._produce, args=(source,), name="docpipe-collate", daemon=True)
        self._thread.start()

    def _produce(self, source: Iterable) -> None:
        try:
            for item in source:
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
            self._put_last(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put_last(exc)

    def _put_last(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator:
        while True:
            started = time.perf_counter()
            item = self._queue.get()
            self.waited += time.perf_counter() - started
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def ahead(pool: ThreadPoolExecutor, windows, depth: int) -> Iterator:
    """Results of the window makers in order, at most `depth` running at once."""
    running = [pool.submit(make) for make in windows[:depth]]
    following = iter(windows[depth:])
    while running:
        result = running.pop(0).result()
        nxt = next(following, None)
        if nxt is not None:
            running.append(pool.submit(nxt))
        yield result


def as_tensors(arrays: dict, pin: bool) -> dict:
    """Torch views of host arrays; pin: page-locked copies, whose copy to a GPU is asynchronous."""
    import torch

    return {
        k: None if v is None else (torch.from_numpy(v).pin_memory() if pin else torch.from_numpy(v))
        for k, v in arrays.items()
    }


def special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after one text ([CLS] and [SEP] for BERT), learnt from a probe."""
    from pipeline.infer.inputs import _template

    before, after = _template(tokenizer).single
    return list(before), list(after)
