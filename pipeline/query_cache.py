"""A bounded LRU of query embeddings around an encoder: a repeated query skips the model.

Search asks for one vector per query; users repeat queries (paging, refining filters, dashboards polling),
and on a CPU one encode costs tens of milliseconds. The cache keys on the exact query text: vectors are
deterministic for a given encoder, and one cache wraps one encoder, so a reindex to another model (another
encoder) never serves stale vectors.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np


class CachedEncoder:
    """`encode` as the wrapped encoder's, rows served from the cache where it holds them; every other attribute
    is the wrapped encoder's."""

    def __init__(self, encoder: Any, size: int):
        if size < 0:
            raise ValueError(f"cache size must be 0 or more, got {size}")
        self.encoder, self.size = encoder, size
        self._rows: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.encoder, name)

    def encode(self, texts: list[str]) -> np.ndarray:
        if self.size == 0:
            return self.encoder.encode(texts)
        found: dict[int, np.ndarray] = {}
        with self._lock:
            for i, text in enumerate(texts):
                row = self._rows.get(text)
                if row is not None:
                    self._rows.move_to_end(text)
                    found[i] = row
            self.hits += len(found)
            self.misses += len(texts) - len(found)
        todo = [i for i in range(len(texts)) if i not in found]
        if not todo:
            return np.stack([found[i] for i in range(len(texts))]) if texts else self.encoder.encode(texts)
        fresh = self.encoder.encode([texts[i] for i in todo])
        with self._lock:
            for i, row in zip(todo, fresh, strict=True):
                found[i] = row
                self._rows[texts[i]] = row.copy()  # the caller may write into what it got
                self._rows.move_to_end(texts[i])
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)
        return np.stack([found[i] for i in range(len(texts))])

    def __len__(self) -> int:
        return len(self._rows)
