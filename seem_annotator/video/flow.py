"""Dense optical flow (OpenCV DIS) carrying a mask from one frame to the next.

The flow is computed from the current frame back to the previous one, so every current pixel looks
up where it came from (backward warping leaves no holes). It runs on small grey copies: the flow
field is smooth, and the backend refines the boundary at full detail afterwards.
"""

from __future__ import annotations

import cv2
import numpy as np


class FlowWarper:
    """One DIS instance (not shareable between threads: make one per propagation thread)."""

    def __init__(self, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> None:
        self._dis = cv2.DISOpticalFlow_create(preset)

    def flow(self, prev_gray: np.ndarray, cur_gray: np.ndarray) -> np.ndarray:
        """(h, w, 2) float32: for each pixel of `cur_gray`, its displacement to `prev_gray`."""
        return self._dis.calc(cur_gray, prev_gray, None)

    def warp(self, prev_gray: np.ndarray, cur_gray: np.ndarray, prev_mask: np.ndarray,
             out_size: tuple[int, int]) -> np.ndarray:
        """The previous frame's bool mask carried onto the current frame, as a float (H, W) map in
        [0, 1] at `out_size` (threshold at 0.5 for a mask)."""
        flow = self.flow(prev_gray, cur_gray)
        return warp_with(flow, prev_mask, out_size)


def warp_with(flow: np.ndarray, prev_mask: np.ndarray, out_size: tuple[int, int]) -> np.ndarray:
    h, w = flow.shape[:2]
    small = cv2.resize(prev_mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    moved = cv2.remap(small, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                      borderValue=0)
    return cv2.resize(moved, (out_size[1], out_size[0]), interpolation=cv2.INTER_LINEAR)
