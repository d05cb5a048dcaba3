"""The search server's own time per request: Elasticsearch's `took`, summed over the searches a query makes.

A hybrid search sends two searches (BM25 and kNN) and fuses them here; the API reports the sum of their `took`
so a client can tell docpipe's own overhead (encoding the query, fusing, HTTP) from the search server's time.
"""

from __future__ import annotations

import time
from typing import Any


class TookMeter:
    """The Elasticsearch client, with `search` adding each response's `took` (ms) to `took_ms`, and the time this
    process waited for the answers (`took` plus the round trip) to `waited_ms`: a server that reports no `took`
    (the embedded noida-db says 0) is still timed."""

    def __init__(self, es: Any):
        self._es = es
        self.took_ms = 0
        self.waited_ms = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._es, name)

    def search(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            resp = self._es.search(*args, **kwargs)
        finally:
            self.waited_ms += (time.perf_counter() - start) * 1000
        took = resp.get("took") if hasattr(resp, "get") else None
        if isinstance(took, int | float):
            self.took_ms += int(took)
        return resp
