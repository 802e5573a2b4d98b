"""The classical backend's last step: the working grid's answer refined at fine resolution.

The cut runs on a small grid (fast, but its outline is only as precise as the grid). Here GrabCut
runs once more on the image itself (at most `refine_side` pixels a side), only in a narrow band
around that outline: pixels farther inside than the band are fixed foreground, farther outside
fixed background. The colour models still learn from the object's whole neighbourhood (a crop
around the band), while the graph cut only decides the ribbon - boundaries at the image's own
precision for the cost of a thin crop, a couple of iterations.
"""

from __future__ import annotations

import cv2
import numpy as np

from seem_annotator.engine.classical_cut import clean, dilate, disk, grabcut, roi_around

FITTING = 16384  # at most about this many pixels of a part's crop teach its colour models


def refine_outline(bgr: np.ndarray, coarse: np.ndarray, fg: np.ndarray, bg: np.ndarray, band: int,
                   iterations: int = 2, limit: np.ndarray | None = None, most: int = 6,
                   solver: str = "graph") -> np.ndarray:
    """The answer `coarse` (bool, at bgr's size) with its outline re-cut within `band` pixels.

    fg / bg: pixels that must be foreground / background (the prompts' hard discs); limit: where
    the object may be (a box or polygon still in force), else None. Each part of the answer (up
    to `most`, the largest) is re-cut on its own, so a part comes out the same whatever else the
    answer holds. Returns bool (h, w)."""
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
        out[window][part] = False
        out[window] |= _refine_part(bgr[window], part, fg[window], bg[window], band, iterations,
                                    None if limit is None else limit[window], solver)
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
