"""The classical backend's click round: the textbook GrabCut clicker, plus what makes it a good one.

The formulation is the textbook one (bench/grabcut_plain.py): a thin border is background, each
positive seed a small hard-foreground disc inside a larger probable-foreground disc, each negative
seed a hard-background disc, `cv2.grabCut` from that label map. On top of it:

- the cut: our GrabCut (graphcut.py: the same model, a min-cut graph kept per image so a round
  re-cuts from the previous flow), or `cv2.grabCut` itself (`solver="opencv"`, for comparison);
- memory: from the second round on the previous answer starts as probable foreground, so the
  colour models start from what the user has already accepted and a click only corrects;
- speed: later rounds run on the previous answer's neighbourhood only (a crop), fewer iterations;
- topology: only the parts connected to a positive seed are kept, small holes are filled, and the
  seeds always hold in the answer;
- fallbacks that keep every prompt doing what it says (classical_rules.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np

from seem_annotator.engine import graphcut


@dataclass(frozen=True)
class CutSettings:
    """Sizes in working-grid pixels (the backend scales them from full-resolution pixels)."""

    hard_radius: int = 3
    probable_radius: int = 13
    border: int = 2
    first_iterations: int = 5
    iterations: int = 3
    margin: float = 0.3  # crop margin around the previous answer, as a fraction of its size
    from_previous: bool = True  # the previous answer starts as probable foreground
    keep_connected: bool = True  # drop parts not connected to a positive seed
    solver: str = "graph"  # "graph": graphcut.py with the image's kept graph; "opencv": cv2.grabCut


class WorkingImage:
    """An image on the working grid (BGR, uint8) and what every round on it shares, each made on
    first use: its texture-smoothed copy and its kept min-cut graph (graphcut.GridCut; with
    `separate_openings` a second graph for the rounds' first iterations, where one person's rounds
    follow each other)."""

    def __init__(self, bgr: np.ndarray, neighbours: int = 8, texture: np.ndarray | None = None,
                 separate_openings: bool = False) -> None:
        self.bgr = bgr
        self.neighbours = neighbours  # of its min-cut graph (graphcut.GridCut)
        self.separate_openings = separate_openings
        self._texture = texture  # made on first use when not given
        self._grid: graphcut.GridCut | None = None
        self._lock = threading.Lock()

    def texture(self) -> np.ndarray:
        with self._lock:
            if self._texture is None:
                self._texture = texture_smooth(self.bgr)
            return self._texture

    def grid(self) -> graphcut.GridCut:
        with self._lock:
            if self._grid is None:
                self._grid = graphcut.GridCut(self.bgr, self.neighbours, self.separate_openings)
            return self._grid

    def drop_grid(self) -> None:
        """Free the kept graph (a cut in progress keeps its own reference); grid() builds it anew."""
        with self._lock:
            self._grid = None


def texture_smooth(bgr: np.ndarray) -> np.ndarray:
    """Texture flattened to its mean colour: mean-shift filtering at half size (texture is coarse
    anyway, and it costs a quarter), then a small blur."""
    h, w = bgr.shape[:2]
    half = cv2.resize(bgr, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    shifted = cv2.pyrMeanShiftFiltering(half, 6, 24, maxLevel=1)
    return cv2.GaussianBlur(cv2.resize(shifted, (w, h), interpolation=cv2.INTER_LINEAR), (5, 5), 0)


def disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0 or not mask.any():
        return mask.copy()
    return cv2.dilate(mask.astype(np.uint8), disk(radius)).astype(bool)


def grabcut(bgr: np.ndarray, gc: np.ndarray, iterations: int, roi: tuple[int, int, int, int] | None = None,
            grid: graphcut.GridCut | None = None, solver: str = "graph", fitting: int = 0,
            neighbours: int = 8) -> np.ndarray:
    """GrabCut from a GC_* label map (optionally only inside roi = (y0, y1, x0, x1)): bool mask.
    `grid`: the whole image's kept graph, used when the cut covers the whole image (else a graph
    is made for this cut: `neighbours`-connected, or only its undecided band's, graphcut.grabcut);
    `fitting`: at most about this many pixels teach the colour models (0: all; graphcut.grabcut)."""
    gc = gc.copy()
    y0, y1, x0, x1 = roi if roi is not None else (0, gc.shape[0], 0, gc.shape[1])
    crop = np.ascontiguousarray(gc[y0:y1, x0:x1])
    is_fg = (crop == cv2.GC_FGD) | (crop == cv2.GC_PR_FGD)
    free = (crop == cv2.GC_PR_FGD) | (crop == cv2.GC_PR_BGD)
    if is_fg.any() and not is_fg.all() and free.any() and iterations > 0:
        image = np.ascontiguousarray(bgr[y0:y1, x0:x1])
        if solver == "opencv":
            cv2.setRNGSeed(0)  # GrabCut's k-means start uses OpenCV's global RNG: keep answers repeatable
            try:
                cv2.grabCut(image, crop, None, np.zeros((1, 65)), np.zeros((1, 65)), iterations,
                            cv2.GC_INIT_WITH_MASK)
            except cv2.error:
                pass  # too few distinct colours for a colour model: keep the initial labels
        elif grid is not None and crop.shape == grid.shape:
            with grid.lock:
                crop = graphcut.grabcut(image, crop, iterations, grid, fitting)
        else:
            crop = graphcut.grabcut(image, crop, iterations, fitting=fitting, neighbours=neighbours)
        gc[y0:y1, x0:x1] = crop
    return (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)


def roi_around(region: np.ndarray, margin: float, minimum: int = 12) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the region's bounding box grown by `margin` of its size on each side."""
    ys, xs = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))  # not every pixel's
    h, w = region.shape
    y0, y1, x0, x1 = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
    my = max(minimum, int(margin * (y1 - y0)))
    mx = max(minimum, int(margin * (x1 - x0)))
    return max(0, y0 - my), min(h, y1 + my), max(0, x0 - mx), min(w, x1 + mx)


def click_cut(image: WorkingImage, pos: np.ndarray, neg: np.ndarray, prev: np.ndarray | None,
              s: CutSettings, allowed: np.ndarray | None = None, edit: bool = False) -> np.ndarray:
    """One round from painted positive/negative seeds (clicks, strokes, filled regions) and the
    previous answer: bool (h, w). `allowed`: where the object may be (a box or polygon), else None.
    `edit`: a box drawn over a previous answer refits that answer inside it (GrabCut's own editing
    start) instead of starting from the whole box."""
    h, w = pos.shape
    hard_fg = dilate(pos, s.hard_radius)
    hard_bg = dilate(neg, s.hard_radius) & ~pos  # a seed's own pixels win over the other sign's disc
    hard_fg &= ~hard_bg
    probable = dilate(pos, s.probable_radius)
    gc = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    ring = np.zeros((h, w), bool)
    b = s.border
    ring[:b] = ring[-b:] = True
    ring[:, :b] = ring[:, -b:] = True
    keep_free = probable | (prev if prev is not None else False)
    gc[ring & ~keep_free] = cv2.GC_BGD
    if prev is not None and s.from_previous:
        gc[prev] = cv2.GC_PR_FGD
    gc[probable] = cv2.GC_PR_FGD
    if allowed is not None:
        if edit and prev is not None and prev.any():
            # Most of a box around a tracked or half-done object is background: starting it all
            # as object would teach the colour model the background.
            gc[allowed] = cv2.GC_PR_BGD
            gc[allowed & (prev | probable)] = cv2.GC_PR_FGD
        elif prev is None or not s.from_previous:
            gc[allowed] = cv2.GC_PR_FGD  # GrabCut's own box start: everything inside may be object
        gc[~allowed] = cv2.GC_BGD
    gc[hard_bg] = cv2.GC_BGD
    gc[hard_fg] = cv2.GC_FGD
    roi = None
    iterations = s.first_iterations
    if prev is not None and prev.any() and s.margin > 0:
        roi = roi_around(prev | probable | dilate(neg, s.probable_radius), s.margin)
        iterations = s.iterations
    elif allowed is not None:
        roi = roi_around(allowed, 0.1)
    # A crop is cut on a graph made for it. A box that refits a previous answer (`edit`: how the
    # video tracker asks, box and clicks around a carried mask) needs cv2.grabCut's 8-connected
    # smoothness (DAVIS mean J&F 0.646 against 0.546 4-connected); a person's box or polygon and
    # the clicks after it do better with the image's own grid's (4: the weaker smoothness follows
    # thin parts, and the cut is cheaper).
    out = grabcut(image.bgr, gc, iterations, roi, image.grid() if s.solver == "graph" and roi is None else None,
                  s.solver, neighbours=8 if edit else image.neighbours)
    if not s.keep_connected:
        return (out | hard_fg) & ~hard_bg
    return clean(out | hard_fg, hard_fg, hard_bg)


def clean(mask: np.ndarray, fg: np.ndarray, bg: np.ndarray | None = None, floor: float = 0.05) -> np.ndarray:
    """Keep the parts connected to a positive seed and the others of at least `floor` of the
    object (a body can come apart from the limb that was clicked), fill holes under 1% of the
    object, let the seeds hold."""
    if bg is not None:
        mask = mask & ~bg
    if not mask.any():
        return mask
    # Everything happens within a pixel of the mask's bounding box: a hole reaching that margin is
    # open to the outside, as one reaching the image's edge is, so the answer is the whole image's.
    h, w = mask.shape
    y0, y1, x0, x1 = roi_around(mask, 0.0, minimum=1)
    if (y1 - y0) * (x1 - x0) < 0.8 * h * w:
        window = (slice(y0, y1), slice(x0, x1))
        out = np.zeros_like(mask)
        out[window] = _clean_within(mask[window], fg[window], None if bg is None else bg[window], floor)
        return out
    return _clean_within(mask, fg, bg, floor)


def _clean_within(mask: np.ndarray, fg: np.ndarray, bg: np.ndarray | None, floor: float) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= floor * int(mask.sum())
    keep[labels[fg & mask]] = True  # the parts a seed lies on (a list of labels, not a set)
    keep[0] = False
    if not keep.any():  # a box or polygon alone says "in here", not where: keep its largest part
        keep[1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))] = True
    out = keep[labels]
    holes = (~out).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(holes, connectivity=4)
    limit = max(16, int(out.sum()) // 100)
    hh, ww = mask.shape
    x, y, bw, bh, area = (stats[:, i] for i in range(5))
    touches_border = (x == 0) | (y == 0) | (x + bw == ww) | (y + bh == hh)
    small = (area <= limit) & ~touches_border
    if bg is not None:
        small[labels[bg & (holes > 0)]] = False  # a hole a negative seed made stays open
    small[0] = False
    out |= small[labels]
    if bg is not None:
        out &= ~bg
    return out


def guided_upsample(mask: np.ndarray, guide_rgb: np.ndarray) -> np.ndarray:
    """The working-grid mask at the guide image's resolution, its outline snapped to the image's
    edges by a guided filter (He et al.) on the grey image: bool (H, W). Only the outline's band is
    filtered, so the cost follows the outline, not the image."""
    hh, ww = guide_rgb.shape[:2]
    soft = cv2.resize(mask.astype(np.float32), (ww, hh), interpolation=cv2.INTER_LINEAR)
    factor = max(hh / mask.shape[0], ww / mask.shape[1])
    if factor < 1.2 or not mask.any():
        return soft >= 0.5
    r = max(2, int(round(2 * factor)))
    band = (soft > 0.02) & (soft < 0.98)
    band = cv2.dilate(band.astype(np.uint8), disk(r)).astype(bool)
    if not band.any():
        return soft >= 0.5
    y0, y1, x0, x1 = roi_around(band, 0.0, minimum=2 * r)
    gray = cv2.cvtColor(np.ascontiguousarray(guide_rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    p = soft[y0:y1, x0:x1]
    k = (2 * r + 1, 2 * r + 1)
    mean_i, mean_p = cv2.blur(gray, k), cv2.blur(p, k)
    cov = cv2.blur(gray * p, k) - mean_i * mean_p
    var = cv2.blur(gray * gray, k) - mean_i * mean_i
    a = cov / (var + 1e-3)
    b = mean_p - a * mean_i
    q = cv2.blur(a, k) * gray + cv2.blur(b, k)
    out = soft >= 0.5
    sub = out[y0:y1, x0:x1]
    sub[band[y0:y1, x0:x1]] = q[band[y0:y1, x0:x1]] >= 0.5
    return out
