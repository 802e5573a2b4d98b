"""Reading COCO RLE without decoding whole images: bounding-box crops.

Run lengths decoded vectorised for many masks at once (`core.masks.rle_runs_batch`) and
expanding only the columns under an object's box (`decode_crop_t`) is what keeps COCO export near
the cost of bare RLE encoding: `pycocotools.mask.decode` would write every pixel of every image.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from seem_annotator.core.geometry import DEFAULT_DETAIL, PolygonDetail, coco_polygons_crop
from seem_annotator.core.masks import rle_runs


def decode_crop_t(rle: dict, x: int, y: int, w: int, h: int, runs: np.ndarray | None = None) -> np.ndarray:
    """The mask's crop [y:y+h, x:x+w], *transposed*: uint8 (w, h) C-contiguous (column-major, as
    RLE runs are). Only the runs under columns x..x+w are expanded. `runs` saves decoding them."""
    height = int(rle["size"][0])
    ends = np.cumsum(rle_runs(rle) if runs is None else runs)
    lo, hi = x * height, (x + w) * height
    i0 = int(np.searchsorted(ends, lo, side="right"))
    i1 = int(np.searchsorted(ends, hi, side="left"))
    stop = ends[i0:i1 + 1].copy()
    stop[-1] = min(int(stop[-1]), hi)
    start = np.empty_like(stop)
    start[0] = lo
    start[1:] = stop[:-1]
    values = (np.arange(i0, i0 + stop.size) & 1).astype(np.uint8)  # odd runs are foreground
    columns = np.repeat(values, stop - start).reshape(w, height)
    return columns if (y == 0 and h == height) else np.ascontiguousarray(columns[:, y:y + h])


def decode_crop(rle: dict, x: int, y: int, w: int, h: int, runs: np.ndarray | None = None) -> np.ndarray:
    """uint8 (h, w) C-contiguous crop [y:y+h, x:x+w] of an RLE's mask."""
    return np.ascontiguousarray(decode_crop_t(rle, x, y, w, h, runs).T)


def coco_polygons_from_rle(rle: dict, detail: PolygonDetail = DEFAULT_DETAIL, box: list[float] | None = None,
                           area: int | None = None, runs: np.ndarray | None = None) -> list[list[float]] | None:
    """`core.geometry.coco_polygons` of an RLE: polygons (or None for holes/empty). `box`
    ([x, y, w, h]), `area` and `runs`, when already known, save recomputing them."""
    x, y, w, h = (int(round(v)) for v in (box if box is not None else mask_utils.toBbox(rle)))
    if w <= 0 or h <= 0:
        return None
    return coco_polygons_crop(decode_crop_t(rle, x, y, w, h, runs), x, y, detail, area)
