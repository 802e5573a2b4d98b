"""Prompts -> bool masks at a model's working resolution.

Every backend sees spatial prompts the way SEEM's evaluation code does (SPEC §3.3): a click is a
small square (one pixel dilated by a 3x3 kernel), a stroke is its polyline painted with its width,
a polygon is its filled area. Boxes are kept apart (`PromptMasks.boxes`) because backends treat
them as a region constraint rather than painted pixels.

Coordinates come in full-resolution image pixels (pixel i covers [i, i + 1)); `scale` maps them to
the working grid (working pixels per full-resolution pixel).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np

from seem_annotator.core.prompts import (
    BoxPrompt,
    PointPrompt,
    PolygonPrompt,
    Prompt,
    StrokePrompt,
)

CLICK_HALF = 1  # a click covers (2 * CLICK_HALF + 1)^2 pixels: the official 3x3 square
_SHIFT = 4  # cv2 fixed-point bits: keeps sub-pixel stroke/polygon positions
_ONE = 1 << _SHIFT


@dataclass
class PromptMasks:
    """Spatial prompts of one round rasterised on an (h, w) grid, split by kind and sign.

    clicks: (x, y, positive) integer pixel positions on the grid, in prompt order.
    boxes: (x0, y0, x1, y1) integer, end-exclusive, clipped to the grid, in prompt order.
    """

    size: tuple[int, int]
    pos_clicks: np.ndarray
    neg_clicks: np.ndarray
    pos_strokes: np.ndarray
    neg_strokes: np.ndarray
    pos_regions: np.ndarray
    neg_regions: np.ndarray
    clicks: list[tuple[int, int, bool]] = field(default_factory=list)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)

    @property
    def positive(self) -> np.ndarray:
        """Union of all positive painted prompts (clicks, strokes, polygons), bool (h, w)."""
        return self.pos_clicks | self.pos_strokes | self.pos_regions

    @property
    def negative(self) -> np.ndarray:
        """Union of all negative painted prompts, bool (h, w)."""
        return self.neg_clicks | self.neg_strokes | self.neg_regions

    @property
    def box_region(self) -> np.ndarray | None:
        """Union of the boxes as a bool (h, w) mask, or None when there is no box."""
        if not self.boxes:
            return None
        region = np.zeros(self.size, bool)
        for x0, y0, x1, y1 in self.boxes:
            region[y0:y1, x0:x1] = True
        return region

    def has_positive(self) -> bool:
        """Whether anything says where the object is (a positive painted prompt or a box)."""
        return bool(self.boxes) or bool(self.positive.any())


def to_pixel(x: float, y: float, scale: float, size: tuple[int, int]) -> tuple[int, int]:
    """Grid pixel (column, row) holding the full-resolution position (x, y), clipped to the grid."""
    h, w = size
    px = int(np.floor(x * scale))
    py = int(np.floor(y * scale))
    return min(max(px, 0), w - 1), min(max(py, 0), h - 1)


def paint_click(mask: np.ndarray, px: int, py: int, half: int = CLICK_HALF) -> None:
    """Set the (2*half+1)-pixel square centred on (px, py) in place (clipped at the borders)."""
    h, w = mask.shape
    mask[max(py - half, 0):min(py + half + 1, h), max(px - half, 0):min(px + half + 1, w)] = True


def _fixed(points: Iterable[tuple[float, float]], scale: float) -> np.ndarray:
    # Pixel i covers [i, i+1) but cv2 draws around integer centres: shift by half a pixel.
    pts = np.asarray([(x * scale - 0.5, y * scale - 0.5) for x, y in points], np.float64)
    return np.round(pts * _ONE).astype(np.int32).reshape(-1, 1, 2)


def paint_stroke(mask: np.ndarray, points: tuple[tuple[float, float], ...], width: float,
                 scale: float) -> None:
    """Paint an open polyline `width` full-resolution pixels wide (at least one grid pixel)."""
    if not points:
        return
    thickness = max(1, int(round(width * scale)))
    canvas = mask.view(np.uint8) if mask.dtype == bool else mask
    if len(points) == 1:
        x, y = points[0]
        centre = tuple(int(v) for v in _fixed([(x, y)], scale).reshape(2))
        radius = max(int(round(thickness * _ONE / 2)), _ONE // 2)
        cv2.circle(canvas, centre, radius, 1, thickness=-1, lineType=cv2.LINE_8, shift=_SHIFT)
    else:
        cv2.polylines(canvas, [_fixed(points, scale)], False, 1, thickness=thickness,
                      lineType=cv2.LINE_8, shift=_SHIFT)


def paint_polygon(mask: np.ndarray, points: tuple[tuple[float, float], ...], scale: float) -> None:
    """Fill a closed polygon (its outline included); fewer than 3 points paints the outline only."""
    if not points:
        return
    canvas = mask.view(np.uint8)
    pts = _fixed(points, scale)
    if len(points) >= 3:
        cv2.fillPoly(canvas, [pts], 1, lineType=cv2.LINE_8, shift=_SHIFT)
    cv2.polylines(canvas, [pts], True, 1, thickness=1, lineType=cv2.LINE_8, shift=_SHIFT)


def box_pixels(box: BoxPrompt, scale: float, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The grid pixels a box covers, as end-exclusive (x0, y0, x1, y1), at least one pixel."""
    b = box.normalized()
    h, w = size
    x0 = min(max(int(np.floor(b.x0 * scale)), 0), w - 1)
    y0 = min(max(int(np.floor(b.y0 * scale)), 0), h - 1)
    x1 = min(max(int(np.ceil(b.x1 * scale)), x0 + 1), w)
    y1 = min(max(int(np.ceil(b.y1 * scale)), y0 + 1), h)
    return x0, y0, x1, y1


def rasterize(prompts: Iterable[Prompt], size: tuple[int, int], scale: float) -> PromptMasks:
    """Rasterise the spatial prompts on an (h, w) grid; non-spatial prompts are ignored here."""
    h, w = size
    planes = {name: np.zeros((h, w), bool) for name in
              ("pos_clicks", "neg_clicks", "pos_strokes", "neg_strokes", "pos_regions", "neg_regions")}
    clicks: list[tuple[int, int, bool]] = []
    boxes: list[tuple[int, int, int, int]] = []
    for prompt in prompts:
        if isinstance(prompt, PointPrompt):
            px, py = to_pixel(prompt.x, prompt.y, scale, size)
            paint_click(planes["pos_clicks" if prompt.positive else "neg_clicks"], px, py)
            clicks.append((px, py, prompt.positive))
        elif isinstance(prompt, StrokePrompt):
            paint_stroke(planes["pos_strokes" if prompt.positive else "neg_strokes"], prompt.points,
                         prompt.width, scale)
        elif isinstance(prompt, PolygonPrompt):
            paint_polygon(planes["pos_regions" if prompt.positive else "neg_regions"], prompt.points, scale)
        elif isinstance(prompt, BoxPrompt):
            boxes.append(box_pixels(prompt, scale, size))
    return PromptMasks(size=(h, w), clicks=clicks, boxes=boxes, **planes)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a bool mask to (h, w): nearest when shrinking, smoothed edges when enlarging."""
    h, w = size
    if mask.shape == (h, w):
        return mask.astype(bool, copy=True)
    if h * w > mask.size:
        up = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        return up >= 0.5
    return cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
