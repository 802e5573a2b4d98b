"""A least-recently-used cache bounded in bytes (image features keyed by image content).

Encoding an image (backbone + pixel decoder) is ~all of SEEM's cost; the predictor keeps the
features of recently used images so going back to an image, or switching between neighbours that
were pre-encoded in the background, costs nothing. Values report their own size (`nbytes()` or a
`sizeof` function); the cache evicts the oldest entries until the total fits the budget. A value
larger than the whole budget is returned to the caller but not kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

GiB = 1 << 30


def default_budget(device: str) -> int:
    """Bytes of features to keep for a device: a quarter of free GPU memory (at most 4 GiB) on CUDA,
    1 GiB on MPS and 2 GiB on the CPU (or a quarter of RAM when that is smaller)."""
    if device.startswith("cuda"):
        try:
            import torch

            free, _total = torch.cuda.mem_get_info(torch.device(device))
            return int(min(4 * GiB, max(256 << 20, free // 4)))
        except Exception:  # no driver / busy device: a conservative fixed budget
            return 1 * GiB
    if device == "mps":
        return 1 * GiB
    try:
        import os

        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return int(min(2 * GiB, ram // 4))
    except (ValueError, OSError, AttributeError):
        return 2 * GiB


def _sizeof(value: Any) -> int:
    size = getattr(value, "nbytes", None)
    if callable(size):
        return int(size())
    if isinstance(size, int):
        return size
    raise TypeError(f"cannot size a {type(value).__name__}; pass sizeof=")


class FeatureCache:
    """Thread-safe LRU mapping bounded by the sum of its values' sizes in bytes."""

    def __init__(self, budget_bytes: int, sizeof: Callable[[Any], int] = _sizeof) -> None:
        self.budget = int(budget_bytes)
        self._sizeof = sizeof
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def get(self, key: Hashable) -> Any | None:
        """The value (now most recently used) or None."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: Hashable, value: Any) -> None:
        """Insert (or refresh) a value, evicting least recently used ones to stay in budget."""
        size = self._sizeof(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if size > self.budget:
                return
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.budget:
                _k, (_v, s) = self._items.popitem(last=False)
                self._bytes -= s

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The cached value, or `compute()` stored and returned (computed outside the lock)."""
        value = self.get(key)
        if value is None:
            value = compute()
            self.put(key, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
