"""From SEEM's per-query outputs to semantic, panoptic and instance results.

Inputs are one image's ``mask_cls`` (Q, K+1) class logits (last column = no object) and
``mask_pred`` (Q, H, W) mask logits already at the output resolution (see
:func:`sem_seg_postprocess`). The rules follow the official ``GeneralizedSEEM.evaluate``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def upsample_masks(masks: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear (align_corners=False) resize of mask logits (B, Q, h, w) -> (B, Q, *size)."""
    return F.interpolate(masks, size=size, mode="bilinear", align_corners=False)


BOX_SHARE = 0.25  # a positive box bigger than this share of the input: resize the whole image


def _bilinear_axis(n_in: int, n_out: int, lo: int, hi: int) -> tuple[int, int, Tensor, Tensor, Tensor] | None:
    """Bilinear (align_corners=False) sampling along one axis, as ``F.interpolate`` computes it,
    for the output positions that read an input index in [lo, hi]: (first, end, i0, i1, lambda);
    None when no output reads them (a shrinking resize can skip input rows)."""
    scale = torch.tensor(n_in / n_out, dtype=torch.float32)
    src = ((torch.arange(n_out, dtype=torch.float32) + 0.5) * scale - 0.5).clamp_min(0)
    i0 = src.long().clamp_max(n_in - 1)
    lam = src - i0
    i1 = (i0 + 1).clamp_max(n_in - 1)
    needed = torch.nonzero((i1 >= lo) & (i0 <= hi)).flatten()
    if needed.numel() == 0:
        return None
    first, end = int(needed[0]), int(needed[-1]) + 1
    return first, end, i0[first:end], i1[first:end], lam[first:end]


def resized_mask(logits: Tensor, size: tuple[int, int]) -> np.ndarray:
    """bool (H, W) = bilinear resize (align_corners=False) of (h, w) ``logits`` to ``size``, > 0.

    A pixel can only be positive where one of the input pixels it blends is, so only the rows and
    columns that read from the positive pixels' box are computed: a mask for a 12 MP photo costs
    what its object's box costs. Same sampling as ``F.interpolate`` (columns, then rows), which
    does the whole image when the box covers most of it.
    """
    h, w = logits.shape
    out = np.zeros(size, dtype=bool)
    positive = logits > 0
    rows, cols = torch.nonzero(positive.any(1)).flatten(), torch.nonzero(positive.any(0)).flatten()
    if rows.numel() == 0:
        return out
    if (int(rows[-1]) - int(rows[0]) + 1) * (int(cols[-1]) - int(cols[0]) + 1) > BOX_SHARE * h * w:
        full = F.interpolate(logits.float()[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
        return (full > 0).cpu().numpy()
    along_y = _bilinear_axis(h, size[0], int(rows[0]), int(rows[-1]))
    along_x = _bilinear_axis(w, size[1], int(cols[0]), int(cols[-1]))
    if along_y is None or along_x is None:
        return out
    (ya, yb, y0, y1, ly), (xa, xb, x0, x1, lx) = along_y, along_x
    logits = logits.float().cpu()
    band = logits[int(y0[0]): int(y1[-1]) + 1]  # the input rows these output rows read
    y0, y1 = y0 - int(y0[0]), y1 - int(y0[0])
    across = band[:, x0] * (1 - lx) + band[:, x1] * lx  # (rows, nX)
    values = across[y0] * (1 - ly)[:, None] + across[y1] * ly[:, None]
    out[ya:yb, xa:xb] = (values > 0).numpy()
    return out


def sem_seg_postprocess(result: Tensor, image_size: tuple[int, int], height: int, width: int) -> Tensor:
    """Crop (C, Hp, Wp) to the unpadded ``image_size`` (h, w), then resize to (height, width) with
    bicubic + antialias. Returns (C, height, width)."""
    cropped = result[:, : image_size[0], : image_size[1]][None]
    return F.interpolate(cropped, size=(height, width), mode="bicubic", align_corners=False, antialias=True)[0]


def semantic_inference(mask_cls: Tensor, mask_pred: Tensor) -> Tensor:
    """Per-class score maps (K, H, W) = sum over queries of p(class) * sigmoid(mask)."""
    probs = F.softmax(mask_cls, dim=-1)[..., :-1]
    return torch.einsum("qc,qhw->chw", probs, mask_pred.sigmoid())


def panoptic_inference(
    mask_cls: Tensor,
    mask_pred: Tensor,
    num_classes: int,
    thing_ids: Collection[int],
    object_mask_threshold: float,
    overlap_threshold: float,
) -> tuple[Tensor, list[dict[str, Any]]]:
    """Panoptic segmentation: (segment ids int32 (H, W), segments_info).

    Queries whose best class is not "no object" and scores above ``object_mask_threshold`` compete
    per pixel (score * sigmoid); a query keeps the pixels it wins where its own sigmoid >= 0.5 if
    that is at least ``overlap_threshold`` of its own mask. Stuff segments of one class merge.
    Ids start at 1; 0 = unassigned. ``thing_ids``: contiguous class ids that are things.
    """
    scores, labels = F.softmax(mask_cls, dim=-1).max(-1)
    probs = mask_pred.sigmoid()
    keep = labels.ne(num_classes) & (scores > object_mask_threshold)
    cur_scores, cur_classes, cur_masks = scores[keep], labels[keep], probs[keep]
    h, w = probs.shape[-2:]
    panoptic = torch.zeros((h, w), dtype=torch.int32, device=probs.device)
    segments: list[dict[str, Any]] = []
    if cur_masks.shape[0] == 0:
        return panoptic, segments
    winner = (cur_scores.view(-1, 1, 1) * cur_masks).argmax(0)
    things = {int(t) for t in thing_ids}
    stuff_ids: dict[int, int] = {}
    next_id = 0
    for k in range(cur_classes.shape[0]):
        cls = int(cur_classes[k].item())
        isthing = cls in things
        won = winner == k
        own = cur_masks[k] >= 0.5
        mask = won & own
        area, own_area = int(won.sum()), int(own.sum())
        if area == 0 or own_area == 0 or int(mask.sum()) == 0:
            continue
        if area / own_area < overlap_threshold:
            continue
        if not isthing:
            if cls in stuff_ids:
                panoptic[mask] = stuff_ids[cls]
                continue
            stuff_ids[cls] = next_id + 1
        next_id += 1
        panoptic[mask] = next_id
        segments.append({"id": next_id, "isthing": bool(isthing), "category_id": cls})
    return panoptic, segments


def instance_inference(
    mask_cls: Tensor,
    mask_pred: Tensor,
    num_classes: int,
    topk: int,
    thing_ids: Collection[int] | None = None,
) -> dict[str, Any]:
    """Instance segmentation: the ``topk`` (query, class) pairs by class probability.

    With ``thing_ids`` given (panoptic models) only thing classes are kept. Returns
    ``{image_size (H, W), pred_masks (N, H, W) float 0/1, pred_boxes (N, 4) zeros (no box head),
    scores (N,) = class prob * mean sigmoid inside the mask, pred_classes (N,) int64}``.
    """
    q = mask_cls.shape[0]
    probs = F.softmax(mask_cls, dim=-1)[:, :-1]
    labels = torch.arange(num_classes, device=mask_cls.device).unsqueeze(0).repeat(q, 1).flatten(0, 1)
    # sorted=False as the reference: the order of the returned instances is the reference's.
    # (topk is capped at Q*K, where the reference would fail.)
    scores, top = probs.flatten(0, 1).topk(min(topk, probs.numel()), sorted=False)
    classes = labels[top]
    masks = mask_pred[top // num_classes]
    if thing_ids is not None:
        things = {int(t) for t in thing_ids}
        keep = torch.tensor([int(c) in things for c in classes.tolist()], dtype=torch.bool, device=masks.device)
        scores, classes, masks = scores[keep], classes[keep], masks[keep]
    binary = (masks > 0).float()
    mask_scores = (masks.sigmoid().flatten(1) * binary.flatten(1)).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
    return {
        "image_size": tuple(mask_pred.shape[-2:]),
        "pred_masks": binary,
        "pred_boxes": torch.zeros(binary.shape[0], 4, device=binary.device),
        "scores": scores * mask_scores,
        "pred_classes": classes,
    }
