"""The object's colour model from its keyframe, so propagation errors do not accumulate.

A backend refining each frame from the previous answer slowly adopts whatever background it
leaked into (its colour models follow its own mistakes). The keyframe's colours do not drift:
joint colour histograms of the object and of the background around it on the keyframe give each
pixel of a later frame P(object | colour); pixels of an answer whose colour is clearly background's
on the keyframe are taken out again.
"""

from __future__ import annotations

import cv2
import numpy as np

BINS = 16  # per channel (YCrCb): 4096 joint bins


def _codes(rgb: np.ndarray) -> np.ndarray:
    ycc = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2YCrCb)
    q = (ycc.astype(np.int32) * BINS) >> 8
    return (q[..., 0] * BINS + q[..., 1]) * BINS + q[..., 2]


class ColourModel:
    """P(object | colour) learnt from one frame and its object mask (both at the same size)."""

    def __init__(self, rgb: np.ndarray, mask: np.ndarray, ring: float = 0.5) -> None:
        mask = np.asarray(mask, bool)
        ys, xs = np.nonzero(mask)
        size = max(int(np.ptp(ys)) + 1, int(np.ptp(xs)) + 1) if ys.size else 1
        r = max(3, int(round(size * ring)))
        near = cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
        background = near.astype(bool) & ~mask
        codes = _codes(rgb)
        n = BINS ** 3
        fg = np.bincount(codes[mask], minlength=n).astype(np.float32)
        bg = np.bincount(codes[background], minlength=n).astype(np.float32)
        # Neighbouring colours count too (lighting changes between frames shift colours a little).
        fg = cv2.GaussianBlur(fg.reshape(BINS, BINS * BINS), (3, 3), 0).reshape(-1) + 1e-3
        bg = cv2.GaussianBlur(bg.reshape(BINS, BINS * BINS), (3, 3), 0).reshape(-1) + 1e-3
        fg /= fg.sum()
        bg /= bg.sum()
        self.table = fg / (fg + bg)  # equal priors: the ratio of likelihoods

    def probability(self, rgb: np.ndarray) -> np.ndarray:
        return self.table[_codes(rgb)]
