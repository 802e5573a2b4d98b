"""Reading COCO RLE without decoding whole images: run lengths and bounding-box crops.

pycocotools' compressed `counts` string stores each run as 5-bit chunks (+48; 0x20 = more chunks
follow; 0x10 in the last chunk = negative), and every run from the fourth on is a delta against the
run two before. Decoding that vectorised with numpy, for many masks at once (`rle_runs_batch`), and
expanding only the columns under an object's box (`decode_crop_t`) is what keeps COCO export near
the cost of bare RLE encoding: `pycocotools.mask.decode` would write every pixel of every image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools import mask as mask_utils

from seem_annotator.core.geometry import DEFAULT_DETAIL, PolygonDetail, coco_polygons_crop


def _counts_bytes(rle: dict) -> bytes:
    counts = rle["counts"]
    return counts.encode("ascii") if isinstance(counts, str) else bytes(counts)


def rle_runs_batch(rles: Sequence[dict]) -> list[np.ndarray]:
    """Run lengths (int64; background, foreground, background, ...; column-major) of many RLEs,
    decoded together with a fixed number of numpy operations whatever their count."""
    if not rles:
        return []
    if any(isinstance(r["counts"], list) for r in rles):
        return [rle_runs(r) for r in rles]
    strings = [_counts_bytes(r) for r in rles]
    raw = np.frombuffer(b"".join(strings), dtype=np.uint8)
    if raw.size == 0:
        return [np.zeros(0, dtype=np.int64) for _ in rles]
    c = raw.astype(np.int64) - 48
    is_last = c < 32  # no "more chunks" bit
    # the last chunk of a run carries the sign: treat its 5 bits as two's complement
    chunk = np.where(is_last, (c & 0x1F) - ((c & 0x10) << 1), c & 0x1F)
    last = np.flatnonzero(is_last)
    first = np.empty_like(last)
    first[0] = 0
    first[1:] = last[:-1] + 1
    pos = np.arange(c.size) - np.repeat(first, last - first + 1)
    values = np.add.reduceat(chunk << (5 * pos), first)
    # runs per RLE: last-chunks inside each string's character range
    char_end = np.cumsum([len(s) for s in strings])
    run_end = np.searchsorted(last, char_end, side="left")
    run_start = np.concatenate(([0], run_end[:-1]))
    per = run_end - run_start
    local = np.arange(values.size) - np.repeat(run_start, per)
    rid = np.repeat(np.arange(len(rles)), per)
    # undo the delta coding within each RLE: run m (m >= 3) += run m - 2, i.e. a cumulative sum
    # along the odd runs and along the even runs from 2, restarted for every RLE
    for parity, lowest in ((1, 1), (0, 2)):
        sel = np.flatnonzero(((local & 1) == parity) & (local >= lowest))
        if sel.size == 0:
            continue
        sums = np.cumsum(values[sel])
        seg = rid[sel]
        starts = np.flatnonzero(np.concatenate(([True], seg[1:] != seg[:-1])))
        before = np.concatenate(([0], sums[starts[1:] - 1]))
        values[sel] = sums - np.repeat(before, np.diff(np.append(starts, sel.size)))
    return np.split(values, run_end[:-1])


def rle_runs(rle: dict) -> np.ndarray:
    """Run lengths of one RLE (compressed or uncompressed)."""
    if isinstance(rle["counts"], list):
        return np.asarray(rle["counts"], dtype=np.int64)
    return rle_runs_batch([rle])[0]


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
