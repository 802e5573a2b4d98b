"""Segment-everything without weights: object-like regions, ranked by how object-like they are.

An over-segmentation (watershed superpixels on the texture-smoothed image, seeded on a grid) is
merged bottom-up, always the most similar adjacent pair by mean colour (small regions first),
until a few dozen regions are left. Regions under a size floor or covering most of the image are
dropped; the rest are scored by objectness: colour contrast with their neighbours, compactness,
and how little of their outline is the image border (backgrounds run off the frame).
"""

from __future__ import annotations

import heapq

import cv2
import numpy as np


def _superpixels(smooth: np.ndarray, step: int) -> np.ndarray:
    h, w = smooth.shape[:2]
    markers = np.zeros((h, w), np.int32)
    ys = np.arange(step // 2, h, step)
    xs = np.arange(step // 2, w, step)
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    markers[gy.ravel(), gx.ravel()] = np.arange(1, gy.size + 1)
    cv2.watershed(smooth, markers)
    # Watershed lines (-1) join the neighbour on their right/below (or left/above at the edge).
    lines = markers < 1
    if lines.any():
        filled = cv2.dilate(np.where(lines, 0, markers).astype(np.float32), np.ones((3, 3), np.uint8))
        markers[lines] = filled[lines].astype(np.int32)
    return markers - 1


def _adjacent_pairs(labels: np.ndarray) -> np.ndarray:
    a = np.concatenate([labels[:, :-1].ravel(), labels[:-1, :].ravel()])
    b = np.concatenate([labels[:, 1:].ravel(), labels[1:, :].ravel()])
    keep = a != b
    pairs = np.stack([np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])], 1)
    return np.unique(pairs, axis=0)


def object_regions(bgr: np.ndarray, smooth: np.ndarray, levels: tuple[int, ...] = (24, 12, 6),
                   floor: float = 0.01, largest: float = 0.5, most: int = 30) -> list[tuple[np.ndarray, float]]:
    """(mask, objectness in (0, 1]) for the object-like regions of the image, best first: the
    regions of every level of the merge hierarchy (a part and the whole it merges into are both
    candidates), duplicates dropped."""
    h, w = bgr.shape[:2]
    step = max(6, int(np.sqrt(h * w / 400)))
    labels = np.maximum(_superpixels(smooth, step), 0)
    n = int(labels.max()) + 1
    lab = cv2.cvtColor(smooth, cv2.COLOR_BGR2LAB).reshape(-1, 3).astype(np.float64)
    flat = labels.ravel()
    area = np.bincount(flat, minlength=n).astype(np.float64)
    total = np.stack([np.bincount(flat, lab[:, c], minlength=n) for c in range(3)], 1)
    parent = np.arange(n)
    neighbours: dict[int, set[int]] = {i: set() for i in range(n)}
    for a, b in _adjacent_pairs(labels):
        neighbours[int(a)].add(int(b))
        neighbours[int(b)].add(int(a))
    alive = {i for i in range(n) if area[i] > 0}

    def cost(i: int, j: int) -> float:
        d = total[i] / area[i] - total[j] / area[j]
        # Ward-like: merging small regions is cheap, so fragments go first.
        return float(np.sqrt(d @ d) * np.sqrt(area[i] * area[j] / (area[i] + area[j])))

    version = np.zeros(n, np.int64)
    heap = [(cost(i, j), i, j, 0, 0) for i in alive for j in neighbours[i] if i < j and j in alive]
    heapq.heapify(heap)
    snapshots: list[tuple[np.ndarray, dict[int, set[int]], np.ndarray, np.ndarray]] = []
    pending = sorted(levels, reverse=True)
    while pending and heap:
        if len(alive) <= pending[0]:
            snapshots.append((_resolve(parent, labels), {k: set(v) for k, v in neighbours.items()},
                              total.copy(), area.copy()))
            pending.pop(0)
            continue
        _, i, j, vi, vj = heapq.heappop(heap)
        if i not in alive or j not in alive or version[i] != vi or version[j] != vj:
            continue  # stale: one side has merged since
        area[i] += area[j]
        total[i] += total[j]
        parent[j] = i
        version[i] += 1
        for k in neighbours.pop(j):
            neighbours[k].discard(j)
            if k != i:
                neighbours[k].add(i)
                neighbours[i].add(k)
        neighbours[i].discard(j)
        alive.discard(j)
        for k in neighbours[i]:
            a, b = (i, k) if i < k else (k, i)
            heapq.heappush(heap, (cost(a, b), a, b, int(version[a]), int(version[b])))
    out: list[tuple[np.ndarray, float]] = []
    for merged, adjacency, sums, sizes in snapshots:
        for i in np.unique(merged):
            mask = merged == i
            a = float(mask.sum())
            if a < floor * h * w or a > largest * h * w:
                continue
            if any(_iou(mask, m) > 0.85 for m, _ in out):
                continue  # the same region at a coarser level
            out.append((mask, _objectness(mask, int(i), sums, sizes, adjacency)))
    out.sort(key=lambda r: -r[1])
    return out[:most]


def _resolve(parent: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The label image with every merged superpixel named by its surviving root."""
    root = parent.copy()
    for i in range(len(root)):
        r = i
        while root[r] != r:
            r = root[r]
        root[i] = r
    return root[labels]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.count_nonzero(a & b)
    return inter / max(1, np.count_nonzero(a | b))


def _objectness(mask: np.ndarray, i: int, total: np.ndarray, area: np.ndarray,
                neighbours: dict[int, set[int]]) -> float:
    mean = total[i] / area[i]
    others = [total[k] / area[k] for k in neighbours.get(i, ()) if area[k] > 0]
    contrast = min(1.0, float(np.mean([np.linalg.norm(mean - o) for o in others])) / 40.0) if others else 0.0
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours) or 1.0
    compact = min(1.0, 4 * np.pi * float(mask.sum()) / perimeter ** 2)
    border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]]).sum() / perimeter
    return float(max(0.01, contrast * np.sqrt(compact) * (1.0 - min(1.0, border))))
