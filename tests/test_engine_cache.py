"""The byte-bounded LRU feature cache."""

from __future__ import annotations

import numpy as np
import pytest

from seem_annotator.engine.feature_cache import FeatureCache, default_budget


class Blob:
    def __init__(self, n: int) -> None:
        self.data = np.zeros(n, np.uint8)

    def nbytes(self) -> int:
        return self.data.nbytes


def test_evicts_least_recently_used_to_stay_in_budget():
    cache = FeatureCache(250)
    cache.put("a", Blob(100))
    cache.put("b", Blob(100))
    assert cache.get("a") is not None  # "a" is now the most recent
    cache.put("c", Blob(100))
    assert "b" not in cache and "a" in cache and "c" in cache
    assert cache.nbytes == 200 and len(cache) == 2
    cache.put("a", Blob(50))  # refreshing a key replaces its size
    assert cache.nbytes == 150


def test_oversized_value_is_not_kept_and_get_or_compute():
    cache = FeatureCache(100)
    calls = []

    def make():
        calls.append(1)
        return Blob(10)

    assert cache.get_or_compute("k", make) is cache.get_or_compute("k", make)
    assert len(calls) == 1 and cache.hits == 1
    big = Blob(1000)
    cache.put("big", big)
    assert "big" not in cache and cache.nbytes == 10
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0
    with pytest.raises(TypeError):
        cache.put("x", object())


def test_default_budget_per_device():
    assert 0 < default_budget("cpu") <= 2 << 30
    assert default_budget("mps") == 1 << 30
