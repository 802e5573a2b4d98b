"""The classical backend's last step: the working grid's answer refined at fine resolution.

The cut runs on a small grid (fast, but its outline is only as precise as the grid). Here GrabCut
runs once more on the image itself (at most `refine_side` pixels a side), only in a narrow band
around that outline: pixels farther inside than the band are fixed foreground, farther outside
fixed background. The colour models still learn from the object's whole neighbourhood (a crop
around the band), while the graph cut only decides the ribbon - boundaries at the image's own
precision for the cost of a thin crop, a couple of iterations.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import cv2
import numpy as np

from seem_annotator.engine.classical_cut import clean, dilate, disk, grabcut, roi_around

FITTING = 16384  # at most about this many pixels of a part's crop teach its colour models


class RefinedParts:
    """The refined parts of one image's recent answers, by what each was refined from (its window,
    its coarse outline, the seeds and the limit there, the settings). A click changes one part of
    an answer; the others come back unchanged and are not re-cut. A part's refinement depends on
    nothing else (a fresh graph, a seeded k-means), so a stored one is exactly what re-cutting
    would give. Thread-safe."""

    def __init__(self, capacity: int = 12) -> None:
        # Packed bits (a window of a large object at fine resolution is a few hundred kB as bool).
        self._parts: OrderedDict[bytes, tuple[np.ndarray, tuple[int, ...]]] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()
        self.hits = 0

    @staticmethod
    def key(window: tuple[int, int, int, int], *arrays: np.ndarray | None, settings: tuple = ()) -> bytes:
        digest = hashlib.blake2b(repr((window, settings)).encode(), digest_size=20)
        for a in arrays:
            digest.update(b"-" if a is None else np.packbits(a).tobytes() + repr(a.shape).encode())
        return digest.digest()

    def get(self, key: bytes) -> np.ndarray | None:
        with self._lock:
            stored = self._parts.get(key)
            if stored is None:
                return None
            self._parts.move_to_end(key)
            self.hits += 1
        bits, shape = stored
        return np.unpackbits(bits, count=int(np.prod(shape))).reshape(shape).astype(bool)

    def put(self, key: bytes, part: np.ndarray) -> None:
        stored = np.packbits(part, axis=None), part.shape
        with self._lock:
            self._parts[key] = stored
            while len(self._parts) > self._capacity:
                self._parts.popitem(last=False)


def refine_outline(bgr: np.ndarray, coarse: np.ndarray, fg: np.ndarray, bg: np.ndarray, band: int,
                   iterations: int = 2, limit: np.ndarray | None = None, most: int = 6,
                   solver: str = "graph", memo: RefinedParts | None = None) -> np.ndarray:
    """The answer `coarse` (bool, at bgr's size) with its outline re-cut within `band` pixels.

    fg / bg: pixels that must be foreground / background (the prompts' hard discs); limit: where
    the object may be (a box or polygon still in force), else None. Each part of the answer (up
    to `most`, the largest) is re-cut on its own, so a part comes out the same whatever else the
    answer holds (`memo`, when given, keeps them for the next round: bgr must be the same image
    every call). Returns bool (h, w)."""
    if not coarse.any() or band <= 0:
        return coarse.copy()
    count, labels, stats, _ = cv2.connectedComponentsWithStats(coarse.astype(np.uint8), connectivity=8)
    out = coarse.copy()
    order = 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA])
    h, w = coarse.shape
    for k in order[:most]:
        if stats[k, cv2.CC_STAT_AREA] < (2 * band) ** 2:
            break  # too small to hold a band's worth of inside: keep it as it is
        # Everything happens in a window around the part: the band (`band`) and the colour
        # models' context (3 * band + 8) around it; the part never reaches the window's edge
        # unless that is the image's, so the result is the same as on the whole image.
        x, y, bw, bh = stats[k, :4]
        grow = 4 * band + 8
        y0, y1, x0, x1 = max(0, y - grow), min(h, y + bh + grow), max(0, x - grow), min(w, x + bw + grow)
        window = (slice(y0, y1), slice(x0, x1))
        part = labels[window] == k
        part_limit = None if limit is None else limit[window]
        key = refined = None
        if memo is not None:
            key = memo.key((y0, y1, x0, x1), part, fg[window], bg[window], part_limit,
                           settings=(band, iterations, solver))
            refined = memo.get(key)
        if refined is None:
            refined = _refine_part(bgr[window], part, fg[window], bg[window], band, iterations, part_limit, solver)
            if memo is not None:
                memo.put(key, refined)
        out[window][part] = False
        out[window] |= refined
    # Every part of the working grid's answer stays (its topology was decided there: a part can
    # be under clean's size floor here once a click has added a large region elsewhere); only
    # bits the band cut made outside every part may go.
    core = cv2.erode(coarse.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return clean(out, (fg | core) & out, bg)


def _refine_part(bgr: np.ndarray, part: np.ndarray, fg: np.ndarray, bg: np.ndarray, band: int,
                 iterations: int, limit: np.ndarray | None, solver: str) -> np.ndarray:
    kernel = disk(band)
    inner = cv2.erode(part.astype(np.uint8), kernel).astype(bool)
    near = cv2.dilate(part.astype(np.uint8), kernel).astype(bool)
    gc = np.full(part.shape, cv2.GC_BGD, np.uint8)
    gc[near] = cv2.GC_PR_BGD
    gc[part] = cv2.GC_PR_FGD
    gc[inner] = cv2.GC_FGD
    if limit is not None:
        gc[~limit] = cv2.GC_BGD
    gc[bg & near] = cv2.GC_BGD
    gc[fg & near & ~bg] = cv2.GC_FGD
    # The crop: the band and as much context again around it, for the colour models, which learn
    # from a regular sample of it (a large object's crop at fine resolution holds hundreds of
    # thousands of pixels; on the samples tried a sixteen-thousand sample needed the same clicks).
    roi = roi_around(near, 0.0, minimum=3 * band + 8)
    out = grabcut(bgr, gc, iterations, roi, solver=solver, fitting=FITTING)
    return clean(out, (inner | fg) & out, bg)


def band_width(factor: float, base: int = 2) -> int:
    """Band half-width in fine pixels for a grid `factor` times coarser: the grid's own rounding
    (one coarse pixel) plus a margin for the coarse cut's errors."""
    return max(base, int(round(base + 1.5 * factor)))


def seed_discs(positive: np.ndarray, negative: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(fixed foreground, fixed background) from painted seeds: discs of `radius`, a seed's own
    pixels winning over the other sign's disc."""
    bg = dilate(negative, radius) & ~positive
    return dilate(positive, radius) & ~bg, bg
