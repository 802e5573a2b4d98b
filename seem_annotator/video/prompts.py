"""Prompts for the next frame made from a mask carried there (what a person would click).

Any backend answers these through its one interface: positive clicks deep inside the mask (spread
out by farthest-point sampling on the distance transform, so thin parts get one too), negative
clicks on a ring around it, and a box a little larger than it - each only when the backend
supports that kind. The box goes last: a backend that treats the newest prompt as the edit (the
classical one) then refits the whole object in the box instead of a local patch.

With a box, negative clicks also go inside it, on the background between the object and the box's
edge: a backend that fits colour models to the whole box (GrabCut's box start) otherwise learns
that background as object - a box round a person is mostly background - and the ring's clicks lie
outside the box, where they tell it nothing the box does not. They keep a gap from the mask: the
carried mask lags a moving object, and a backend may paint a click as a disc several pixels wide.
"""

from __future__ import annotations

import cv2
import numpy as np

from seem_annotator.core.masks import bounds
from seem_annotator.core.prompts import BoxPrompt, PointPrompt, Prompt
from seem_annotator.engine.types import SegmentationBackend


def farthest_points(region: np.ndarray, count: int, weight: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Up to `count` (x, y) pixels of `region`, each as far as possible from those already picked
    (the first one where `weight` is highest). Deterministic."""
    ys, xs = np.nonzero(region)
    if ys.size == 0 or count <= 0:
        return []
    if ys.size > 20000:  # a regular subsample keeps this cheap on big masks
        step = ys.size // 20000 + 1
        ys, xs = ys[::step], xs[::step]
    first = int(np.argmax(weight[ys, xs])) if weight is not None else 0
    picked = [first]
    dist = (ys - ys[first]) ** 2 + (xs - xs[first]) ** 2
    for _ in range(count - 1):
        nxt = int(np.argmax(dist))
        if dist[nxt] == 0:
            break
        picked.append(nxt)
        dist = np.minimum(dist, (ys - ys[nxt]) ** 2 + (xs - xs[nxt]) ** 2)
    return [(int(xs[i]), int(ys[i])) for i in picked]


def prompts_from_mask(mask: np.ndarray, backend: SegmentationBackend, positives: int = 5, negatives: int = 8,
                      box_margin: float = 0.08, box_negatives: int = 32, box_gap: float = 0.06
                      ) -> tuple[Prompt, ...]:
    """Prompts (full-resolution pixel coordinates) describing `mask` (bool (H, W)) to `backend`."""
    box = bounds(mask)
    if box is None:
        return ()
    y0, y1, x0, x1 = box
    h, w = mask.shape
    size = max(y1 - y0, x1 - x0)
    prompts: list[Prompt] = []
    if backend.supports("point"):
        inside = mask.astype(np.uint8)
        dist = cv2.distanceTransform(np.pad(inside, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
        # Deep inside only: a click on an uncertain boundary pixel would pin an error in place.
        core = dist >= max(1.0, 0.25 * float(dist.max()))
        for x, y in farthest_points(core, positives, dist):
            prompts.append(PointPrompt(x + 0.5, y + 0.5, True))
        gap = max(3, int(round(size * 0.12)))
        k1 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * gap + 1, 2 * gap + 1))
        k2 = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (4 * gap + 1, 4 * gap + 1))
        # Only within reach of the larger kernel can a dilation be set: dilating that window alone
        # is the same, and on a small object in a large frame a fraction of the work.
        reach = 2 * gap + 1
        window = (slice(max(0, y0 - reach), min(h, y1 + reach)), slice(max(0, x0 - reach), min(w, x1 + reach)))
        near = np.zeros((h, w), bool)
        ring = np.zeros((h, w), bool)
        near[window] = cv2.dilate(inside[window], k1).astype(bool)
        ring[window] = cv2.dilate(inside[window], k2).astype(bool) & ~near[window]
        for x, y in farthest_points(ring, negatives):
            prompts.append(PointPrompt(x + 0.5, y + 0.5, False))
    if backend.supports("box"):
        m = max(2.0, size * box_margin)
        frame = BoxPrompt(max(0.0, x0 - m), max(0.0, y0 - m), min(float(w), x1 + m), min(float(h), y1 + m))
        if backend.supports("point") and box_negatives > 0:
            prompts += _inside_box_negatives(mask, frame, size, box_negatives, box_gap)
        prompts.append(frame)
    return tuple(prompts)


def _inside_box_negatives(mask: np.ndarray, box: BoxPrompt, size: int, count: int, gap: float
                          ) -> list[Prompt]:
    """Negative clicks spread over the box's background, at least `gap` of the object's size (and
    10 pixels) off the mask."""
    region = np.zeros_like(mask, dtype=bool)
    region[int(np.ceil(box.y0)):int(box.y1), int(np.ceil(box.x0)):int(box.x1)] = True
    px = max(10, int(round(size * gap)))
    near = cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1,) * 2))
    region &= ~near.astype(bool)
    return [PointPrompt(x + 0.5, y + 0.5, False) for x, y in farthest_points(region, count)]
