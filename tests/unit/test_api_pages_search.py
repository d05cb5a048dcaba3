"""The query-embedding cache of the API process, and the search server's `took` it reports."""

from __future__ import annotations

import numpy as np

from api.took import TookMeter
from pipeline.query_cache import CachedEncoder


class CountingEncoder:
    """Deterministic vectors from the text, counting what reaches the model."""

    dims = 4

    def __init__(self):
        self.encoded: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.encoded += texts
        return np.array([[len(t), t.count("a"), 1.0, 0.0] for t in texts], dtype=np.float32).reshape(-1, 4)


def test_repeated_queries_skip_the_model_and_the_least_recent_leaves_first():
    model = CountingEncoder()
    cache = CachedEncoder(model, size=2)
    first = cache.encode(["alpha"])
    first[0, 0] = -1  # a caller writing into its vector does not change the cached one
    assert cache.encode(["alpha"])[0].tolist() == [5, 2, 1, 0] and model.encoded == ["alpha"]
    mixed = cache.encode(["beta", "alpha", "beta"])
    assert mixed[:, 0].tolist() == [4, 5, 4] and model.encoded == ["alpha", "beta", "beta"]
    cache.encode(["alpha"])  # used again: beta is now the least recent
    cache.encode(["gamma"])  # full: beta leaves
    cache.encode(["alpha"])
    cache.encode(["beta"])
    assert model.encoded == ["alpha", "beta", "beta", "gamma", "beta"] and len(cache) == 2
    assert (cache.hits, cache.misses, cache.dims) == (4, 5, 4)  # other attributes are the encoder's


def test_a_cache_of_size_zero_keeps_nothing():
    model = CountingEncoder()
    cache = CachedEncoder(model, size=0)
    cache.encode(["q"])
    cache.encode(["q"])
    assert model.encoded == ["q", "q"] and len(cache) == 0


class TwoSearches:
    def __init__(self):
        self.answers = [{"took": 3, "hits": {"hits": []}}, {"took": 11, "hits": {"hits": []}}]
        self.indices = object()

    def search(self, **kwargs):
        return self.answers.pop(0)


def test_the_meter_sums_the_took_of_every_search_and_passes_the_rest_through():
    es = TwoSearches()
    meter = TookMeter(es)
    meter.search(index="a")
    meter.search(index="a")
    assert meter.took_ms == 14 and meter.indices is es.indices
