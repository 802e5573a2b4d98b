"""DAVIS measures: region similarity J (IoU) and boundary accuracy F (contour precision/recall
with a tolerance of 0.008 of the image diagonal), as in the DAVIS 2016 evaluation."""

from __future__ import annotations

import math

import cv2
import numpy as np

from seem_annotator.core.masks import mask_iou

BOUNDARY_TOLERANCE = 0.008  # of the image diagonal


def region_j(mask: np.ndarray, gt: np.ndarray) -> float:
    """IoU; 1.0 when both are empty (the DAVIS convention)."""
    return mask_iou(np.asarray(mask, bool), np.asarray(gt, bool))


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary: pixels that differ from their right, lower or lower-right neighbour."""
    seg = np.asarray(mask, bool)
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    b[-1, :] = seg[-1, :] ^ east[-1, :]
    b[:, -1] = seg[:, -1] ^ south[:, -1]
    b[-1, -1] = False
    return b


def boundary_f(mask: np.ndarray, gt: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE) -> float:
    h, w = gt.shape
    radius = max(1, math.ceil(tolerance * math.hypot(h, w)))
    fg_b, gt_b = boundary_map(mask), boundary_map(gt)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    fg_dil = cv2.dilate(fg_b.astype(np.uint8), disk).astype(bool)
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), disk).astype(bool)
    n_fg, n_gt = int(fg_b.sum()), int(gt_b.sum())
    if n_fg == 0 and n_gt == 0:
        return 1.0
    precision = 1.0 if n_fg == 0 else float((fg_b & gt_dil).sum()) / n_fg
    recall = 1.0 if n_gt == 0 else float((gt_b & fg_dil).sum()) / n_gt
    if n_fg == 0 or n_gt == 0:
        precision, recall = (1.0, 0.0) if n_fg == 0 else (0.0, 1.0)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
