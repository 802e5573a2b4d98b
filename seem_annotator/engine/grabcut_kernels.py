"""The per-pixel loops of our GrabCut (graphcut.py), compiled with numba: the colour mixtures' and a
band's graph.

Each GrabCut iteration assigns every pixel to its most likely component of its label's mixture,
re-learns the mixtures from those assignments, and turns both mixtures into the cut's unary costs.
In numpy that is a dozen passes over (k, n) temporaries per iteration; here each is one pass over
the pixels that keeps a pixel's k log-likelihoods in registers (about twice as fast on a click's
grid). A band's graph (graphcut.BandCut) likewise: its crop's contrast, its edges and the edges
folded into terminal capacities are two passes over the crop instead of numpy's many.

numba comes with openai-whisper. Compiled code is cached beside this module (or in the user's
cache when that is read-only; with neither writable, compiled in each process), and `warm_up`
compiles or loads it before a first click.

Colours are planar, float64 (3, n). A mixture is its `quadratic_weights` (k, 10): row c dotted with
a colour's quadratic features (x0^2, x1^2, x2^2, x0 x1, x0 x2, x1 x2, x0, x1, x2, 1) is
log(weight_c * N_c(x)) up to a constant; `used` (k,) marks the components that have pixels.
Moments (k, 10) are the per-component sums of the same features (the last column the counts).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit

log = logging.getLogger(__name__)

# Reordering and fusing float operations is safe here; assuming no infinities (fastmath's
# default) is not: an empty mixture's maximum starts at -inf.
_FAST = {"reassoc", "contract", "arcp"}


def _compiled(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """numba's njit, its code cached on disk where numba finds a writable place (beside this module,
    else the user's cache folder); where it finds none (a read-only install and home), compiled
    anew in each process rather than failing to import."""
    def decorate(function: Callable[..., Any]) -> Any:
        try:
            return njit(cache=True, nogil=True, **options)(function)
        except RuntimeError as exc:  # "cannot cache function ...: no locator available"
            log.info("GrabCut's compiled loops are not cached: %s", exc)
            return njit(cache=False, nogil=True, **options)(function)
    return decorate


@_compiled(fastmath=_FAST)
def _log_likelihood(q: np.ndarray, a: float, b: float, d: float) -> float:
    return a * (q[0] * a + q[3] * b + q[4] * d + q[6]) + b * (q[1] * b + q[5] * d + q[7]) + d * (q[2] * d + q[8]) + q[9]


@_compiled()
def _add(moments: np.ndarray, c: int, a: float, b: float, d: float) -> None:
    m = moments[c]
    m[0] += a * a
    m[1] += b * b
    m[2] += d * d
    m[3] += a * b
    m[4] += a * d
    m[5] += b * d
    m[6] += a
    m[7] += b
    m[8] += d
    m[9] += 1.0


@_compiled()
def moments_of(colours: np.ndarray, components: np.ndarray, k: int) -> np.ndarray:
    """(k, 10) moments of colours (3, n) by component (n,) in [0, k); -1: not counted."""
    moments = np.zeros((k, 10))
    for i in range(colours.shape[1]):
        c = components[i]
        if c >= 0:
            _add(moments, c, colours[0, i], colours[1, i], colours[2, i])
    return moments


@_compiled()
def moments_of_best(colours: np.ndarray, member: np.ndarray, weights: np.ndarray, used: np.ndarray) -> np.ndarray:
    """(k, 10) moments of the colours (3, n) where member (n,) holds, each counted for its most
    likely used component of the mixture `weights` (k, 10) (ties to the lowest; with no used
    component, component 0)."""
    k = weights.shape[0]
    moments = np.zeros((k, 10))
    for i in range(colours.shape[1]):
        if not member[i]:
            continue
        a, b, d = colours[0, i], colours[1, i], colours[2, i]
        best, chosen = -np.inf, 0
        for c in range(k):
            if used[c]:
                v = _log_likelihood(weights[c], a, b, d)
                if v > best:
                    best, chosen = v, c
        _add(moments, chosen, a, b, d)
    return moments


@_compiled(fastmath=_FAST)
def neg_log_mixture(colours: np.ndarray, weights: np.ndarray, used: np.ndarray) -> np.ndarray:
    """(n,) float32: -log(sum_c weight_c N_c(x)) (up to the mixture's constant) of colours (3, n),
    over the used components of `weights` (k, 10); +inf with none. Component by component, so
    that the inner loops run over contiguous pixels."""
    k, n = weights.shape[0], colours.shape[1]
    a, b, d = colours[0], colours[1], colours[2]
    rows = np.empty((k, n))
    top = np.full(n, -np.inf)
    for c in range(k):
        if not used[c]:
            continue
        q, row = weights[c], rows[c]
        for i in range(n):
            v = _log_likelihood(q, a[i], b[i], d[i])
            row[i] = v
            top[i] = max(top[i], v)
    # The largest term is 1 (no overflow, no underflow of all). float32 is plenty for the sum (the
    # result is float32), and its exp costs half; a term under exp(-20) is below its resolution.
    total = np.zeros(n, np.float32)
    for c in range(k):
        if not used[c]:
            continue
        row = rows[c]
        for i in range(n):
            e = row[i] - top[i]
            if e > -20.0:
                total[i] += math.exp(np.float32(e))
    out = np.empty(n, np.float32)
    for i in range(n):
        out[i] = np.inf if total[i] == 0.0 else -(top[i] + math.log(total[i]))
    return out


@_compiled()
def band_graph(bgr: np.ndarray, labels: np.ndarray, offsets: np.ndarray, gamma: float, free_label_a: int,
               free_label_b: int, fg_label: int, bg_label: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The graph of a band: bgr (h, w, 3) uint8, labels (h, w) GC_* (free: the two free labels),
    offsets (e, 2) the forward neighbours (dy, dx). GrabCut's smoothness weight of an edge is
    gamma / length * exp(-beta * |colour difference|^2), beta the inverse of twice the mean squared
    difference over all the crop's neighbour pairs. Free pixels are numbered in row order. Returns
    (a, b, weight) of the edges between two free pixels, offset by offset in row order; the
    weights of edges from a free pixel to a fg_label / bg_label one summed per free pixel (its
    source / sink fold); and the number of free pixels."""
    h, w = labels.shape
    total, pairs = 0, 0  # integers: exact, and the loop vectorises
    for e in range(offsets.shape[0]):
        dy, dx = offsets[e, 0], offsets[e, 1]
        for y in range(h - dy):
            for x in range(max(0, -dx), min(w, w - dx)):
                for ch in range(3):
                    t = np.int64(bgr[y, x, ch]) - np.int64(bgr[y + dy, x + dx, ch])
                    total += t * t
                pairs += 1
    beta = 0.0 if total <= 0 else pairs / (2.0 * total)
    ids = np.full((h, w), -1, np.int64)
    count = 0
    for y in range(h):
        for x in range(w):
            if labels[y, x] == free_label_a or labels[y, x] == free_label_b:
                ids[y, x] = count
                count += 1
    most = offsets.shape[0] * count
    a, b, weight = np.empty(most, np.int64), np.empty(most, np.int64), np.empty(most, np.float32)
    fold_source, fold_sink = np.zeros(count), np.zeros(count)
    m = 0
    for e in range(offsets.shape[0]):
        dy, dx = offsets[e, 0], offsets[e, 1]
        scale = gamma / (math.sqrt(2.0) if dy != 0 and dx != 0 else 1.0)
        for y in range(h - dy):
            for x in range(max(0, -dx), min(w, w - dx)):
                i, j = ids[y, x], ids[y + dy, x + dx]
                if i < 0 and j < 0:
                    continue
                s = 0
                for ch in range(3):
                    t = np.int64(bgr[y, x, ch]) - np.int64(bgr[y + dy, x + dx, ch])
                    s += t * t
                wt = scale * math.exp(-beta * s)
                if i >= 0 and j >= 0:
                    a[m], b[m], weight[m] = i, j, wt
                    m += 1
                    continue
                own, other = (i, labels[y + dy, x + dx]) if i >= 0 else (j, labels[y, x])
                if other == fg_label:
                    fold_source[own] += wt
                elif other == bg_label:
                    fold_sink[own] += wt
    return a[:m], b[:m], weight[:m], fold_source, fold_sink, count


def warm_up() -> None:
    """Compile (or load from the cache) every kernel, on a few pixels."""
    colours = np.arange(12, dtype=np.float64).reshape(3, 4)
    weights = np.zeros((2, 10))
    used = np.array([True, False])
    moments_of(colours, np.array([0, 1, -1, 0]), 2)
    moments_of_best(colours, np.ones(4, np.bool_), weights, used)
    neg_log_mixture(colours, weights, used)
    labels = np.array([[0, 2, 3], [1, 3, 2]], np.uint8)
    band_graph(np.zeros((2, 3, 3), np.uint8), labels, np.array([[0, 1], [1, 0]]), 50.0, 2, 3, 1, 0)
