"""Mask <-> polygon geometry.

Conventions (the same as COCO's): pixel (col x, row y) covers the unit square [x, x+1] x [y, y+1],
so polygon vertices lie on pixel *corners* and a polygon that follows a mask's pixel edges
rasterises back to exactly that mask. Rasterisation goes through pycocotools (a pixel is inside when
its centre is), which is what every COCO consumer uses.

Outlines come from OpenCV contours of the mask upsampled 2x: a contour of the upsampled mask runs
through the centres of its boundary sub-pixels, and sub-pixel u maps to the original pixel edge
(u + 1) // 2, which is exact for straight edges, corners, one-pixel-wide parts and diagonal
pinches alike. shapely turns the rings into valid (multi)polygons with holes.

The polygon-detail setting (`PolygonDetail`) is a Douglas-Peucker tolerance in pixels plus the IoU
a simplified outline must keep; when the first tolerance loses too much (small objects) it is
tightened step by step down to the exact pixel outline, so the default always rasterises back to
IoU >= 0.98 with the mask (in practice 1.0 for the exact outline).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import shapely
from pycocotools import mask as mask_utils
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from seem_annotator.core.masks import area, bbox, bounds, decode, encode, mask_iou

__all__ = [
    "DEFAULT_DETAIL", "PolygonDetail", "Rings", "area", "bbox", "coco_polygons", "decode", "encode",
    "geometry_to_mask", "has_holes", "mask_to_geometry", "mask_to_rings", "rings_to_mask",
    "simplify_geometry",
]


@dataclass(frozen=True)
class PolygonDetail:
    """How closely polygons follow a mask.

    `tolerance`: first Douglas-Peucker tolerance tried, in pixels (0 = exact pixel outline).
    `min_iou`: the IoU with the mask a polygon outline must keep; coarser outlines that fall below it
    are retried at `tolerance / 2`, `tolerance / 4`, then exactly.
    """

    tolerance: float = 1.0
    min_iou: float = 0.98

    def tolerances(self) -> tuple[float, ...]:
        if self.tolerance <= 0:
            return (0.0,)
        return (self.tolerance, self.tolerance / 2, self.tolerance / 4, 0.0)


DEFAULT_DETAIL = PolygonDetail()


@dataclass
class Rings:
    """Pixel-corner outlines of a mask: `outer` rings (one per connected part, (N, 2) float arrays of
    x, y) and `holes` (each `(outer_index, ring)`), in the mask's full-image coordinates."""

    outer: list[np.ndarray]
    holes: list[tuple[int, np.ndarray]]

    @property
    def has_holes(self) -> bool:
        return bool(self.holes)


def _exact_rings(crop: np.ndarray, mode: int = cv2.RETR_CCOMP) -> tuple[list[np.ndarray], list[int]]:
    """Exact corner rings ((N, 1, 2) int32, crop coordinates) of a uint8 0/1 C-contiguous crop and each
    ring's parent index (-1 = outer boundary)."""
    up = cv2.resize(crop, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    contours, hierarchy = cv2.findContours(up, mode, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return [], []
    # sub-pixel centre -> original pixel edge (see module docstring)
    return [(c + 1) // 2 for c in contours], [int(p) for p in hierarchy[0][:, 3]]


def _simplified(rings: list[np.ndarray], epsilon: float) -> list[np.ndarray]:
    """(N, 2) rings, Douglas-Peucker simplified when `epsilon` > 0. A ring that would collapse
    below 3 vertices (a small part or hole) keeps its exact outline instead of vanishing."""
    if epsilon <= 0:
        return [r.reshape(-1, 2) for r in rings]
    out = []
    for ring in rings:
        simple = cv2.approxPolyDP(ring, epsilon, True) if len(ring) > 4 else ring
        out.append((simple if len(simple) >= 3 else ring).reshape(-1, 2))
    return out


def _raw_rings(crop: np.ndarray, epsilon: float) -> tuple[list[np.ndarray], list[int]]:
    """Corner rings ((N, 2), crop coordinates) at tolerance `epsilon` and their parent indices."""
    rings, parents = _exact_rings(crop)
    return _simplified(rings, epsilon), parents


def _rings_crop_mask(rings: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """Union raster (pycocotools) of corner rings on a (height, width) canvas."""
    polys = [r.astype(np.float64).ravel().tolist() for r in rings if len(r) >= 3]
    if not polys:
        return np.zeros((height, width), dtype=bool)
    rles = mask_utils.frPyObjects(polys, height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def mask_to_rings(mask: np.ndarray, detail: PolygonDetail = DEFAULT_DETAIL) -> Rings:
    """Outer and hole rings of a bool (H, W) mask at the given detail.

    Each tolerance of `detail.tolerances()` is tried in turn; the first whose rings rasterise back to
    IoU >= `detail.min_iou` (holes subtracted) is returned, else the exact outline.
    """
    box = bounds(mask)
    if box is None:
        return Rings([], [])
    y0, y1, x0, x1 = box
    crop = np.ascontiguousarray(mask[y0:y1, x0:x1], dtype=np.uint8)
    ch, cw = crop.shape
    offset = np.array([x0, y0], dtype=np.float64)
    tolerances = detail.tolerances()
    for i, eps in enumerate(tolerances):
        rings, parents = _raw_rings(crop, eps)
        outer_idx = [k for k, p in enumerate(parents) if p < 0]
        if i < len(tolerances) - 1:
            raster = _rings_crop_mask([rings[k] for k in outer_idx], ch, cw)
            hole_rings = [rings[k] for k, p in enumerate(parents) if p >= 0]
            if hole_rings:
                raster &= ~_rings_crop_mask(hole_rings, ch, cw)
            if mask_iou(raster, crop.astype(bool)) < detail.min_iou:
                continue
        position = {k: n for n, k in enumerate(outer_idx)}
        outer = [rings[k] + offset for k in outer_idx]
        holes = [(position[p], rings[k] + offset) for k, p in enumerate(parents) if p >= 0]
        return Rings(outer, holes)
    raise AssertionError("unreachable: the exact outline is always returned")


def has_holes(mask: np.ndarray) -> bool:
    """True when some background region is enclosed by the mask (so COCO polygons cannot express it)."""
    box = bounds(mask)
    if box is None:
        return False
    y0, y1, x0, x1 = box
    crop = np.ascontiguousarray(mask[y0:y1, x0:x1], dtype=np.uint8)
    _, hierarchy = cv2.findContours(crop, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return hierarchy is not None and bool((hierarchy[0][:, 3] >= 0).any())


def coco_polygons(mask: np.ndarray, detail: PolygonDetail = DEFAULT_DETAIL) -> list[list[float]] | None:
    """COCO `segmentation` polygons ([x0, y0, x1, y1, ...] per part) that rasterise back to IoU >=
    `detail.min_iou` with the mask; None when the mask is empty, has holes, or no outline qualifies.

    Works on the foreground's bounding-box crop (pycocotools rasterisation is invariant under integer
    translation), which keeps it cheap for small objects on large images.
    """
    box = bounds(mask)
    if box is None:
        return None
    crop_t = np.ascontiguousarray(mask[box[0]:box[1], box[2]:box[3]].T, dtype=np.uint8)
    return coco_polygons_crop(crop_t, box[2], box[0], detail)


def coco_polygons_crop(crop_t: np.ndarray, x0: int, y0: int, detail: PolygonDetail,
                        area: int | None = None) -> list[list[float]] | None:
    """Polygons of a crop placed at (x0, y0), or None (holes / empty).

    `crop_t` is the crop *transposed*, uint8 (w, h) C-contiguous (column-major order, as RLE runs
    are): contours traced on it come out with x and y swapped and are swapped back at the end, and
    `crop_t.T` compares with pycocotools' Fortran-ordered rasters without a layout change.
    `area`: the crop's foreground pixel count when already known.
    """
    cw, ch = crop_t.shape
    # Holes first, at 1x (cheap): a mask with holes is never written as COCO polygons.
    _, hierarchy = cv2.findContours(crop_t, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return None
    if (hierarchy[0][:, 3] >= 0).any():
        return None
    exact = _exact_rings(crop_t, cv2.RETR_EXTERNAL)[0]
    if not exact:
        return None
    shift = np.array([x0, y0], dtype=np.int64)
    if area is None:
        area = int(np.count_nonzero(crop_t))
    # Simplifying by eps moves roughly eps * perimeter pixels; for thin or small objects (low area
    # per bounding-box side) the full tolerance would lose more than 1 - min_iou, so it is capped
    # (the cap only saves a check that would fail; the check below still decides).
    coarse = min(detail.tolerance, area / (cw + ch) * (1.0 - detail.min_iou) * 2.0)
    # The coarse outline is verified; failing that the exact pixel outline is used, which rasterises
    # back to the mask exactly by construction (tests check this on thousands of random masks).
    for eps in (coarse, 0.0) if coarse >= 0.3 else (0.0,):
        rings = [r[:, ::-1] for r in _simplified(exact, eps) if len(r) >= 3]  # (y, x) -> (x, y)
        if not rings:
            return None
        if eps > 0:
            poly_rle = mask_utils.merge(mask_utils.frPyObjects(
                [r.astype(np.float64).ravel().tolist() for r in rings], ch, cw))
            # IoU from the symmetric difference: one pass over the crop instead of three
            differ = int(np.count_nonzero(mask_utils.decode(poly_rle) != crop_t.T))
            total = int(mask_utils.area(poly_rle)) + area
            if total == 0 or (total - differ) / (total + differ) < detail.min_iou:
                continue
        # vertices are pixel corners, i.e. whole numbers: written as ints (smaller, faster JSON)
        return [(r.astype(np.int64) + shift).ravel().tolist() for r in rings]
    return None


def rings_to_mask(polygons: list[list[float]] | list[np.ndarray], height: int, width: int) -> np.ndarray:
    """bool (H, W) union raster of flat COCO polygons or (N, 2) rings (pycocotools semantics);
    rings with fewer than 3 points are ignored."""
    flat = []
    for p in polygons:
        arr = np.asarray(p, dtype=np.float64).ravel()
        if arr.size >= 6 and arr.size % 2 == 0:
            flat.append(arr.tolist())
    if not flat:
        return np.zeros((height, width), dtype=bool)
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(flat, height, width))).astype(bool)


def mask_to_geometry(mask: np.ndarray, detail: PolygonDetail = DEFAULT_DETAIL) -> MultiPolygon:
    """Valid shapely MultiPolygon (holes kept) of a bool (H, W) mask, in pixel-corner coordinates."""
    rings = mask_to_rings(mask, detail)
    parts: list[BaseGeometry] = []
    for i, outer in enumerate(rings.outer):
        if len(outer) < 3:
            continue
        holes = [h for j, h in rings.holes if j == i and len(h) >= 3]
        poly = Polygon(outer, holes)
        parts.append(poly if poly.is_valid else shapely.make_valid(poly))
    geom = shapely.unary_union(parts) if parts else MultiPolygon()
    return _as_multipolygon(geom)


def _as_multipolygon(geom: BaseGeometry) -> MultiPolygon:
    """Keep only the areal parts of a geometry (make_valid may add lines/points) as a MultiPolygon."""
    if isinstance(geom, MultiPolygon):
        return geom
    if isinstance(geom, Polygon):
        return MultiPolygon([geom]) if not geom.is_empty else MultiPolygon()
    polys: list[Polygon] = []
    for part in getattr(geom, "geoms", []):
        sub = _as_multipolygon(part)
        polys.extend(sub.geoms)
    return MultiPolygon(polys)


def geometry_to_mask(geom: BaseGeometry, height: int, width: int) -> np.ndarray:
    """bool (H, W) raster of a (multi)polygon with holes (pycocotools semantics, pixel centres).

    Invalid input is repaired with `make_valid` first; parts outside the image are clipped.
    """
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    out = np.zeros((height, width), dtype=bool)
    for poly in _as_multipolygon(geom).geoms:
        if poly.is_empty:
            continue
        minx, miny, maxx, maxy = poly.bounds
        x0, y0 = max(int(np.floor(minx)), 0), max(int(np.floor(miny)), 0)
        x1, y1 = min(int(np.ceil(maxx)), width), min(int(np.ceil(maxy)), height)
        if x1 <= x0 or y1 <= y0:
            continue
        shift = np.array([x0, y0], dtype=np.float64)
        # Rasterise on the part's window (translation by whole pixels does not change the raster).
        part = _rings_crop_mask([np.asarray(poly.exterior.coords)[:-1] - shift], y1 - y0, x1 - x0)
        holes = [np.asarray(r.coords)[:-1] - shift for r in poly.interiors]
        if holes:
            part &= ~_rings_crop_mask(holes, y1 - y0, x1 - x0)
        out[y0:y1, x0:x1] |= part
    return out


def simplify_geometry(geom: BaseGeometry, tolerance: float) -> MultiPolygon:
    """Topology-preserving simplification that stays valid."""
    simple = shapely.simplify(geom, tolerance, preserve_topology=True)
    if not simple.is_valid:
        simple = shapely.make_valid(simple)
    return _as_multipolygon(simple)

