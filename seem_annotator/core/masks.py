"""Binary masks and their COCO RLE form (through pycocotools).

A mask is a bool numpy array (H, W). An RLE is pycocotools' compressed RLE with `counts` decoded to
str so it is JSON-ready: `{"size": [H, W], "counts": "..."}`.

pycocotools' compressed `counts` string stores each run as 5-bit chunks (+48; 0x20 = more chunks
follow; 0x10 in the last chunk = negative), and every run from the fourth on is a delta against the
run two before. `rle_runs_batch` decodes that vectorised with numpy, for many masks at once, so
that callers can read a mask's runs without writing every pixel of its image.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_utils


def encode(mask: np.ndarray) -> dict:
    """Compressed RLE of a bool/0-1 (H, W) mask (the same counts as pycocotools' encoder).

    Big masks are read row by row, never transposed: the run boundaries are where a column of
    the foreground's box changes value, found with one difference down the rows and put in
    column-major order by sorting only those positions. Objects usually cover a small part of a
    photo, so the cost follows their box and outline rather than the image.
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    h, w = mask.shape
    if mask.size < 1 << 16:
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8, copy=False)))
        return {"size": [h, w], "counts": rle["counts"].decode("ascii")}
    box = bounds(mask)
    if box is None:
        counts = [h * w]
    else:
        y0, y1, x0, x1 = box
        framed = np.zeros((y1 - y0 + 2, x1 - x0), dtype=np.int8)  # the box, zero rows above and below
        inside = mask[y0:y1, x0:x1]
        framed[1:-1] = inside if inside.dtype == bool else inside != 0
        row, col = np.nonzero(np.diff(framed, axis=0))
        change = np.sort((x0 + col) * h + y0 + row)
        # Where the box spans the full height, a column's last change and the next column's first
        # fall on the same position (the foreground continues): they cancel.
        if y0 == 0 and y1 == h:
            keep = np.ones(change.size, dtype=bool)
            same = np.flatnonzero(change[1:] == change[:-1])
            keep[same] = keep[same + 1] = False
            change = change[keep]
        counts = np.diff(np.concatenate(([0], change, [h * w])))
        if counts[-1] == 0:  # the foreground reaches the last pixel: no closing background run
            counts = counts[:-1]
        counts = counts.tolist()
    rle = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    return {"size": [h, w], "counts": rle["counts"].decode("ascii")}


def _coco(rle: dict) -> dict:
    counts = rle["counts"]
    if isinstance(counts, list):  # uncompressed RLE
        return mask_utils.frPyObjects(rle, int(rle["size"][0]), int(rle["size"][1]))
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def normalize(rle: dict) -> dict:
    """Any RLE (compressed or uncompressed, counts str or bytes) as compressed with str counts."""
    coco = _coco(rle)
    counts = coco["counts"]
    return {"size": [int(coco["size"][0]), int(coco["size"][1])],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def decode(rle: dict) -> np.ndarray:
    """bool (H, W) mask of an RLE."""
    return mask_utils.decode(_coco(rle)).astype(bool)


def area(rle: dict) -> int:
    """Number of foreground pixels."""
    return int(mask_utils.area(_coco(rle)))


def bbox(rle: dict) -> list[float]:
    """COCO [x, y, w, h] bounding box (zeros for an empty mask)."""
    return [float(v) for v in mask_utils.toBbox(_coco(rle))]


def iou(a: dict, b: dict) -> float:
    """Intersection over union of two RLEs of the same size (1.0 when both are empty)."""
    ua, ub = _coco(a), _coco(b)
    if area(a) == 0 and area(b) == 0:
        return 1.0
    return float(mask_utils.iou([ua], [ub], [0])[0][0])


def union(rles: list[dict]) -> dict:
    """RLE of the union of same-size RLEs."""
    merged = mask_utils.merge([_coco(r) for r in rles], intersect=False)
    return normalize(merged)


def subtract(a: dict, b: dict) -> dict:
    """RLE of a minus b."""
    return encode(decode(a) & ~decode(b))


def bounds(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) half-open bounding box of a bool (H, W) mask's foreground, None when empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0]:rows[-1] + 1].any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool arrays (1.0 when both are empty)."""
    inter = np.logical_and(a, b).sum()
    uni = np.logical_or(a, b).sum()
    return 1.0 if uni == 0 else float(inter) / float(uni)


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



def _nearest_indices(src: int, dst: int, axis: int) -> np.ndarray:
    """The source index OpenCV's nearest-neighbour resize reads for each of `dst` outputs along an
    axis (0: rows, 1: columns), taken from OpenCV itself so both agree exactly."""
    ramp = np.arange(src, dtype=np.int32)
    if axis == 1:
        return cv2.resize(ramp[None, :], (dst, 1), interpolation=cv2.INTER_NEAREST)[0].astype(np.int64)
    return cv2.resize(ramp[:, None], (1, dst), interpolation=cv2.INTER_NEAREST)[:, 0].astype(np.int64)


def decode_resized(rle: dict, size: tuple[int, int]) -> np.ndarray:
    """bool (h, w) nearest-neighbour resize of an RLE's mask, read straight from its runs.

    Equal to resizing the decoded mask with OpenCV's nearest neighbour, without building the
    full-resolution mask: a 12000 x 8000 mask shown at 6144 x 4096 costs a few tens of ms instead
    of a quarter of a second. Only the runs in the sampled columns are visited."""
    H, W = int(rle["size"][0]), int(rle["size"][1])
    h, w = size
    if (h, w) == (H, W):
        return decode(rle)
    # The mask is stored column-major: OpenCV resizes its (W, H) transpose, so display rows follow
    # the transposed array's columns (axis 1) and display columns its rows (axis 0).
    rows = _nearest_indices(H, h, axis=1)
    cols = _nearest_indices(W, w, axis=0)
    runs = rle_runs(rle)
    ends = np.cumsum(runs)
    fg_start, fg_end = (ends - runs)[1::2], ends[1::2]
    keep = fg_end > fg_start
    fg_start, fg_end = fg_start[keep], fg_end[keep]
    # Each foreground run covers source columns c0..c1; list it once per sampled column it meets.
    j0 = np.searchsorted(cols, fg_start // H, side="left")
    j1 = np.searchsorted(cols, (fg_end - 1) // H, side="right")
    per_run = np.maximum(j1 - j0, 0)
    run = np.repeat(np.arange(per_run.size), per_run)
    first = np.repeat(np.cumsum(per_run) - per_run, per_run)
    j = j0[run] + np.arange(run.size) - first
    top = cols[j] * H
    lo = np.searchsorted(rows, np.maximum(fg_start[run] - top, 0), side="left")
    hi = np.searchsorted(rows, np.minimum(fg_end[run] - top, H), side="left")
    out = np.zeros((w, h), dtype=bool)  # display columns one after another, as the runs come
    if j.size == 0:
        return out.T
    # Only the box the pieces span is written. Runs in one column never overlap: +1 at each
    # piece's first display row, -1 after its last, and a running sum down each column is the
    # mask; with the columns laid out one after another (each with a spare slot for its last -1)
    # one flat running sum does all of them.
    c0, r0 = int(j.min()), int(lo.min())
    edges = np.zeros((int(j.max()) + 1 - c0, int(hi.max()) + 1 - r0), dtype=np.int8)
    np.add.at(edges, (j - c0, lo - r0), 1)
    np.add.at(edges, (j - c0, hi - r0), -1)
    flat = edges.reshape(-1)
    np.cumsum(flat, out=flat)
    out[c0:c0 + edges.shape[0], r0:r0 + edges.shape[1] - 1] = edges[:, :-1].view(bool)
    return out.T  # (h, w), column-major like pycocotools' own decode
