"""`grabcut-plain`: the textbook GrabCut clicker, the reference the classical backend must beat.

Nothing but the textbook formulation, recomputed from all clicks every round: the full image at
its own resolution; a thin border is background; each positive click is a small hard-foreground
disc inside a larger probable-foreground disc, each negative click a hard-background disc; every
other pixel starts as probable background; `cv2.grabCut` with GC_INIT_WITH_MASK, 5 iterations.
No memory of the previous round, no post-processing. Clicks only (the benchmark's prompts).
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from seem_annotator.core.prompts import PointPrompt
from seem_annotator.engine.types import Candidate, DecodeRequest, ImageInput
from seem_annotator.errors import ModelUnavailableError

HARD_RADIUS = 5  # px: the hard disc of a click
PROBABLE_RADIUS = 20  # px: the probable-foreground disc around a positive click
BORDER = 3  # px: the background frame
ITERATIONS = 5


def plain_grabcut(bgr: np.ndarray, clicks: list[tuple[int, int, bool]]) -> np.ndarray:
    """The textbook answer for (x, y, positive) clicks on a BGR uint8 image: bool (h, w)."""
    h, w = bgr.shape[:2]
    gc = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    gc[:BORDER] = gc[-BORDER:] = cv2.GC_BGD
    gc[:, :BORDER] = gc[:, -BORDER:] = cv2.GC_BGD
    for x, y, positive in clicks:
        if positive:
            cv2.circle(gc, (x, y), PROBABLE_RADIUS, cv2.GC_PR_FGD, -1)
    # Hard discs last, in click order: a later click overrides an earlier one where they overlap.
    for x, y, positive in clicks:
        cv2.circle(gc, (x, y), HARD_RADIUS, cv2.GC_FGD if positive else cv2.GC_BGD, -1)
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's k-means start draws from OpenCV's global RNG: same clicks, same answer
    try:
        cv2.grabCut(bgr, gc, None, bgd, fgd, ITERATIONS, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        pass  # too few distinct colours for a colour model: the initial labels are the answer
    return (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)


class GrabCutPlainBackend:
    """The reference clicker behind the benchmark's `--backend grabcut-plain`."""

    name = "grabcut-plain"
    device = "cpu"

    def __init__(self) -> None:
        self._key: str | None = None
        self._bgr: np.ndarray | None = None

    def supports(self, prompt_kind: str) -> bool:
        return prompt_kind == "point"

    def encode(self, image: ImageInput) -> None:
        if image.key != self._key:
            rgb = np.ascontiguousarray(image.pixels[..., :3], dtype=np.uint8)
            if rgb.shape[:2] != image.full_size:
                rgb = cv2.resize(rgb, image.full_size[::-1], interpolation=cv2.INTER_LINEAR)
            self._bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            self._key = image.key

    def predict(self, request: DecodeRequest) -> Candidate:
        t0 = time.perf_counter()
        self.encode(request.image)
        assert self._bgr is not None
        h, w = request.image.full_size
        clicks = []
        for p in request.prompts:
            if not isinstance(p, PointPrompt):
                raise ModelUnavailableError(f"the grabcut-plain reference answers clicks only, not {p.kind} prompts")
            clicks.append((min(max(int(p.x), 0), w - 1), min(max(int(p.y), 0), h - 1), p.positive))
        mask = plain_grabcut(self._bgr, clicks) if any(c[2] for c in clicks) else np.zeros((h, w), bool)
        ms = (time.perf_counter() - t0) * 1e3
        return Candidate(mask=mask, score=1.0, labels=[("unknown", 0.0)], timings={"total": ms},
                         backend=self.name)

    def segment_everything(self, image: ImageInput, labels: tuple[str, ...]) -> list[Candidate]:
        raise ModelUnavailableError("the grabcut-plain reference has no segment-everything")
