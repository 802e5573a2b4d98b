"""Binary masks and their COCO RLE form (through pycocotools).

A mask is a bool numpy array (H, W). An RLE is pycocotools' compressed RLE with `counts` decoded to
str so it is JSON-ready: `{"size": [H, W], "counts": "..."}`.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils


def encode(mask: np.ndarray) -> dict:
    """Compressed RLE of a bool/0-1 (H, W) mask."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8, copy=False)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


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
