"""The classical backend's last step: the working grid's answer refined at fine resolution.

The cut runs on a small grid (fast, but its outline is only as precise as the grid). Here GrabCut
runs once more on the image itself (at most `refine_side` pixels a side), only in a narrow band
around that outline: pixels farther inside than the band are fixed foreground, farther outside
fixed background. The colour models still learn from the object's whole neighbourhood (a crop
around the band), while the graph cut only decides the ribbon - boundaries at the image's own
precision for the cost of a thin crop, a couple of iterations.

A later round whose change is local (a click corrects one stretch of a large object's outline)
re-cuts only the band near that change (`refine_locally`): the previous round's refined outline
stays everywhere else, as the click said nothing about it. On the first 24 COCO MVal images the
change of a click over 250 ms covered a median 8% of the answer's bounding box, and refining the
whole outline was about two fifths of such a click.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

from seem_annotator.engine.classical_cut import clean, dilate, disk, grabcut, roi_around

FITTING = 16384  # at most about this many pixels of a part's crop teach its colour models
# A change whose window is over this share of the answer's is refined as a whole outline: the
# local cut would cost about as much, and the colour models of a whole part are then better.
LOCAL_SHARE = 0.5


@dataclass(frozen=True)
class RefinedAnswer:
    """What a round's refinement started from and gave, all bool (h, w) at the refinement's
    resolution, packed (a round's memory keeps it; a large image's answer is megabytes as bool)."""

    shape: tuple[int, int]
    packed: tuple[np.ndarray | None, ...]  # coarse, refined, fg, bg, limit

    @classmethod
    def of(cls, coarse: np.ndarray, refined: np.ndarray, fg: np.ndarray, bg: np.ndarray,
           limit: np.ndarray | None) -> RefinedAnswer:
        return cls(coarse.shape, tuple(None if a is None else np.packbits(a, axis=None)
                                       for a in (coarse, refined, fg, bg, limit)))

    def _unpacked(self, i: int) -> np.ndarray | None:
        bits = self.packed[i]
        if bits is None:
            return None
        return np.unpackbits(bits, count=self.shape[0] * self.shape[1]).reshape(self.shape).astype(bool)

    @property
    def coarse(self) -> np.ndarray:
        return self._unpacked(0)

    @property
    def refined(self) -> np.ndarray:
        return self._unpacked(1)

    @property
    def fg(self) -> np.ndarray:
        return self._unpacked(2)

    @property
    def bg(self) -> np.ndarray:
        return self._unpacked(3)

    @property
    def limit(self) -> np.ndarray | None:
        return self._unpacked(4)


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


def refine_locally(bgr: np.ndarray, coarse: np.ndarray, fg: np.ndarray, bg: np.ndarray, band: int,
                   previous: RefinedAnswer, iterations: int = 2, limit: np.ndarray | None = None,
                   solver: str = "graph") -> np.ndarray | None:
    """refine_outline's answer for a round that changed the previous one (`previous`, refined
    on the same image) only locally: the band is re-cut in a window around what changed (the
    coarse answer, the seeds), the previous refined answer holds everywhere else. None when the
    change is not local (a different limit, or a window over LOCAL_SHARE of the answer's): then
    refine the whole outline."""
    if previous.shape != coarse.shape:
        return None
    before_limit = previous.limit
    if (limit is None) != (before_limit is None) or (limit is not None and not np.array_equal(limit, before_limit)):
        return None
    before = previous.coarse
    changed = (coarse ^ before) | (fg ^ previous.fg) | (bg ^ previous.bg)
    refined = previous.refined
    if not changed.any():
        return refined
    if _has_new_part(coarse, before, (2 * band) ** 2):
        return None  # a new part is refined whole, as refine_outline does (and its memo keeps the others)
    h, w = coarse.shape
    # The free window: the band around what changed and as much again; the crop around it gives
    # the colour models their context (as a part's crop does), its pixels held as last refined.
    y0, y1, x0, x1 = roi_around(changed, 0.0, minimum=2 * band + 4)
    ey0, ey1, ex0, ex1 = roi_around(coarse | before, 0.0, minimum=4 * band + 8)
    if (y1 - y0) * (x1 - x0) > LOCAL_SHARE * (ey1 - ey0) * (ex1 - ex0):
        return None
    context = 3 * band + 8
    cy0, cy1, cx0, cx1 = max(0, y0 - context), min(h, y1 + context), max(0, x0 - context), min(w, x1 + context)
    crop = (slice(cy0, cy1), slice(cx0, cx1))
    free = np.zeros((cy1 - cy0, cx1 - cx0), bool)
    free[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0] = True
    part = coarse[crop]
    kernel = disk(band)
    inner = cv2.erode(part.astype(np.uint8), kernel).astype(bool)
    near = cv2.dilate(part.astype(np.uint8), kernel).astype(bool)
    gc = np.where(refined[crop], cv2.GC_FGD, cv2.GC_BGD).astype(np.uint8)
    gc[free] = cv2.GC_BGD
    gc[free & near] = cv2.GC_PR_BGD
    gc[free & part] = cv2.GC_PR_FGD
    gc[free & inner] = cv2.GC_FGD
    if limit is not None:
        gc[free & ~limit[crop]] = cv2.GC_BGD
    gc[free & bg[crop] & near] = cv2.GC_BGD
    gc[free & fg[crop] & near & ~bg[crop]] = cv2.GC_FGD
    cut = grabcut(bgr[crop], gc, iterations, solver=solver, fitting=FITTING)
    out = refined.copy()
    out[y0:y1, x0:x1] = cut[free].reshape(y1 - y0, x1 - x0)
    core = cv2.erode(coarse.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return clean(out, (fg | core) & out, bg)


def _has_new_part(coarse: np.ndarray, before: np.ndarray, least: int) -> bool:
    """Whether `coarse` has a part of at least `least` pixels that does not touch `before`."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(coarse.astype(np.uint8), connectivity=8)
    touching = np.zeros(count, bool)
    touching[labels[before & coarse]] = True
    return bool(((stats[1:, cv2.CC_STAT_AREA] >= least) & ~touching[1:]).any())


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
