"""Turning masks into things Qt can draw: tinted RGBA images and outline paths.

The canvas shows very large images through a downscaled display proxy, so every mask is first
brought to the display size (nearest neighbour, which keeps thin parts visible enough for a
preview; the stored masks are never touched). Everything here is plain numpy/OpenCV plus
QImage/QPainterPath construction, kept out of the widgets so it can be tested on its own.
"""

from __future__ import annotations

import cv2
import numpy as np
from PySide6.QtCore import QPointF
from PySide6.QtGui import QImage, QPainterPath, QPolygonF

from seem_annotator.core.masks import bounds

RGB = tuple[int, int, int]


def to_display(mask: np.ndarray, display_size: tuple[int, int]) -> np.ndarray:
    """A bool (H, W) mask resized to display_size (h, w) (returned as is when already that size)."""
    h, w = display_size
    if mask.shape == (h, w):
        return mask.astype(bool, copy=False)
    # A bool array viewed as uint8 needs no copy; OpenCV's nearest resize is then ~10x faster than
    # numpy fancy indexing on a 20000 x 15000 mask.
    mask = mask.astype(bool, copy=False)
    if mask.flags.f_contiguous and not mask.flags.c_contiguous:
        # pycocotools decodes column-major: resize the transposed (C-ordered) view instead of
        # paying for a full-resolution reordering copy.
        small = cv2.resize(mask.T.view(np.uint8), (h, w), interpolation=cv2.INTER_NEAREST).T
        return np.ascontiguousarray(small).view(bool)
    src = np.ascontiguousarray(mask).view(np.uint8)
    return cv2.resize(src, (w, h), interpolation=cv2.INTER_NEAREST).view(bool)


def _color_value(color: RGB, opacity: float) -> np.uint32:
    """One little-endian uint32 per pixel is the RGBA byte quadruple."""
    alpha = int(round(max(0.0, min(1.0, opacity)) * 255))
    return np.uint32(int(color[0]) | int(color[1]) << 8 | int(color[2]) << 16 | alpha << 24)


def compose_rgba(layers: list[tuple[np.ndarray, RGB]], display_size: tuple[int, int],
                 opacity: float) -> np.ndarray:
    """One (h, w, 4) uint8 RGBA image with every (display-size mask, colour) layer painted in order
    (later layers on top) at `opacity` (0..1)."""
    h, w = display_size
    packed = np.zeros((h, w), dtype="<u4")
    for mask, color in layers:
        np.copyto(packed, _color_value(color, opacity), where=mask)
    return packed.view(np.uint8).reshape(h, w, 4)


def compose_crop(layers: list[tuple[np.ndarray, RGB]], opacity: float
                 ) -> tuple[np.ndarray, int, int] | None:
    """Like `compose_rgba` but only over the layers' joint bounding box: (rgba, x0, y0), or None
    when every layer is empty. Each layer is painted over its own box only, so the cost follows
    the objects' sizes, not their number times the area they span together."""
    boxed = [(mask, color, box) for mask, color in layers if (box := bounds(mask)) is not None]
    if not boxed:
        return None
    y0, y1 = min(b[0] for _, _, b in boxed), max(b[1] for _, _, b in boxed)
    x0, x1 = min(b[2] for _, _, b in boxed), max(b[3] for _, _, b in boxed)
    packed = np.zeros((y1 - y0, x1 - x0), dtype="<u4")
    for mask, color, (a0, a1, b0, b1) in boxed:
        np.copyto(packed[a0 - y0:a1 - y0, b0 - x0:b1 - x0], _color_value(color, opacity),
                  where=mask[a0:a1, b0:b1])
    return packed.view(np.uint8).reshape(y1 - y0, x1 - x0, 4), x0, y0


def rgba_to_qimage(rgba: np.ndarray) -> QImage:
    """A QImage owning a copy of an (h, w, 4) uint8 RGBA array."""
    rgba = np.ascontiguousarray(rgba)
    h, w = rgba.shape[:2]
    image = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
    return image.copy()  # detach from the numpy buffer, which may be freed


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """A QImage owning a copy of an (h, w, 3) uint8 RGB array."""
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return image.copy()


def outline_path(mask: np.ndarray, scale: float = 1.0) -> QPainterPath:
    """Outline of a display-size bool mask as a path (outer borders and holes), in display pixels
    times `scale` (pass display->image scale to get image coordinates)."""
    path = QPainterPath()
    box = bounds(mask)
    if box is None:
        return path
    y0, y1, x0, x1 = box
    crop = np.ascontiguousarray(mask[y0:y1, x0:x1], dtype=np.uint8)
    contours, _ = cv2.findContours(crop, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    for contour in contours:
        # Contours run through pixel centres: +0.5 puts them on the pixels drawn by the overlay.
        pts = (contour.reshape(-1, 2).astype(np.float64) + (x0 + 0.5, y0 + 0.5)) * scale
        if len(pts) < 2:
            continue
        path.addPolygon(QPolygonF([QPointF(float(x), float(y)) for x, y in pts]))
        path.closeSubpath()
    return path


def mask_polygons(mask: np.ndarray, epsilon: float = 1.0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Editable polygons of a full-resolution bool mask: (outer rings, hole rings), each an (N, 2)
    float array of vertices, simplified by `epsilon` pixels so a person can drag vertices."""
    outers: list[np.ndarray] = []
    holes: list[np.ndarray] = []
    contours, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    if hierarchy is None:
        return outers, holes
    for contour, info in zip(contours, hierarchy[0]):
        ring = cv2.approxPolyDP(contour, epsilon, True).reshape(-1, 2).astype(np.float64)
        if len(ring) < 3:
            continue
        # RETR_CCOMP: a contour with a parent (info[3] >= 0) is a hole of that parent.
        (holes if info[3] >= 0 else outers).append(ring)
    return outers, holes


def rasterize_polygons(outers: list[np.ndarray], holes: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """bool (H, W) mask of the outer rings filled, minus the hole rings (inverse of `mask_polygons`)."""
    canvas = np.zeros(size, dtype=np.uint8)
    if outers:
        cv2.fillPoly(canvas, [np.round(r).astype(np.int32) for r in outers], 1)
    if holes:
        cv2.fillPoly(canvas, [np.round(r).astype(np.int32) for r in holes], 0)
    return canvas.astype(bool)


def paint_stroke(size: tuple[int, int], points: list[tuple[float, float]], width: float) -> np.ndarray:
    """bool (H, W) mask of a polyline painted with round caps `width` pixels wide (brush/eraser)."""
    canvas = np.zeros(size, dtype=np.uint8)
    thickness = max(1, int(round(width)))
    pts = [(int(round(x)), int(round(y))) for x, y in points]
    if len(pts) == 1:
        cv2.circle(canvas, pts[0], max(1, thickness // 2), 1, -1)
    for a, b in zip(pts, pts[1:]):
        cv2.line(canvas, a, b, 1, thickness, lineType=cv2.LINE_8)
    if pts:
        cv2.circle(canvas, pts[0], max(1, thickness // 2), 1, -1)
        cv2.circle(canvas, pts[-1], max(1, thickness // 2), 1, -1)
    return canvas.astype(bool)
