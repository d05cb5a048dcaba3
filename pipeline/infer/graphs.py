"""Captured CUDA graphs for the engine's static batch shapes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class CudaGraphs:
    """One captured CUDA graph per static batch shape: replaying it launches the whole forward pass at once,
    with no Python and no per-kernel launch cost. A shape whose capture fails (a model that syncs with the
    host, say) runs eagerly from then on."""

    def __init__(self, forward: Callable):
        self.forward = forward
        self.captured: dict[tuple, tuple] = {}
        self.failed: set[tuple] = set()
        self.pool: Any = None
        self.output = None

    def replay(self, tensors: dict):
        """The output tensor (also in self.output; overwritten by the next replay), or None: run it eagerly."""
        import torch

        key = tuple((k, tuple(v.shape), v.dtype) for k, v in tensors.items() if v is not None)
        if key in self.failed:
            return None
        found = self.captured.get(key)
        if found is None:
            try:
                found = self.captured[key] = self._capture(tensors)
            except RuntimeError as exc:
                log.warning("CUDA graph capture failed for shape %s, running it eagerly: %s", key, exc)
                self.failed.add(key)
                torch.cuda.synchronize()
                return None
        graph, inputs, output = found
        for name, value in tensors.items():
            if value is not None:
                inputs[name].copy_(value, non_blocking=True)
        graph.replay()
        self.output = output
        return output

    def _capture(self, tensors: dict) -> tuple:
        import torch

        inputs = {k: v.clone() for k, v in tensors.items() if v is not None}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up off the main stream, as capture requires
            for _ in range(2):
                self.forward(**inputs)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            output = self.forward(**inputs).float()
        self.pool = graph.pool()  # shapes share one memory pool: their replays never overlap
        return graph, inputs, output
