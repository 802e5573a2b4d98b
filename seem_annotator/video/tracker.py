"""One propagation step on any backend: carry the mask with optical flow, ask the backend, score it.

From the previous frame's mask the step makes (1) the flow-carried mask on the current frame,
(2) prompts describing it (`video.prompts`), passed with the carried mask as the previous-round
memory, plus, where the backend answers referring prompts (SEEM), the keyframe's region as an
exemplar; the backend's candidate (or an alternative) that agrees best with the carried mask is
kept, then pixels whose colour was clearly background's on the keyframe (on the previous frame
when no keyframe is given) are taken out. Confidence = backend score x IoU(answer, carried mask): a
jump in shape or area that the motion does not explain is what drift looks like.

Zoom: the backend sees a crop around the carried mask (its box plus a margin), not the whole frame,
so a small object gets the backend's whole working resolution (the classical backend works at 320
pixels; SEEM at its input size) - the same crop any person would zoom to.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from seem_annotator.core import masks
from seem_annotator.core.prompts import ReferringPrompt
from seem_annotator.engine.types import DecodeRequest, ImageInput, SegmentationBackend
from seem_annotator.video.colour import ColourModel
from seem_annotator.video.flow import FlowWarper
from seem_annotator.video.frames import Frame
from seem_annotator.video.prompts import prompts_from_mask


@dataclass(frozen=True, eq=False)
class Anchor:
    """The keyframe a step propagates from: its image id, region (RLE) and frame."""

    image_id: int
    rle: dict
    image: ImageInput


@dataclass(eq=False)
class StepResult:
    mask: np.ndarray  # bool (H, W) answer on the current frame
    carried: np.ndarray  # bool (H, W): the previous mask moved by the flow
    confidence: float
    score: float
    consistency: float
    timings: dict[str, float] = field(default_factory=dict)


class MaskTracker:
    """Propagation steps with one backend. Not thread-safe (one per propagation thread)."""

    def __init__(self, backend: SegmentationBackend, labels: tuple[str, ...] = (), zoom: float | None = 0.5,
                 colour_floor: float | None = 0.2) -> None:
        self.backend = backend
        self.labels = labels
        self.zoom = zoom  # margin around the object's box, as a share of its size; None = whole frame
        self.colour_floor = colour_floor  # P(object | keyframe colours) below which answer pixels go
        self._models: dict[tuple[int, str], ColourModel] = {}
        self.flow = FlowWarper()
        self._referring = _supports(backend, "referring")

    def carry(self, prev: Frame, cur: Frame, prev_mask: np.ndarray) -> np.ndarray:
        return self.flow.warp(prev.gray, cur.gray, prev_mask, cur.full_size) >= 0.5

    def step(self, prev: Frame, cur: Frame, prev_mask: np.ndarray, anchor: Anchor | None = None,
             object_id: str = "track", seed: int = 0) -> StepResult:
        t0 = time.perf_counter()
        carried = self.carry(prev, cur, prev_mask)
        t1 = time.perf_counter()
        if not carried.any():
            return StepResult(carried, carried, 0.0, 0.0, 0.0, {"flow": (t1 - t0) * 1e3})
        y0, y1, x0, x1 = self._window(carried)
        image = _crop(cur.image, (y0, y1, x0, x1))
        local = carried[y0:y1, x0:x1]
        prompts = prompts_from_mask(local, self.backend)
        references = {}
        if self._referring and anchor is not None:
            prompts = (ReferringPrompt(anchor.image_id, anchor.rle), *prompts)
            references = {anchor.image_id: anchor.image}
        request = DecodeRequest(image=image, object_id=object_id, round_index=1, prompts=prompts,
                                previous_mask=local, labels=self.labels, references=references, seed=seed)
        answer = self.backend.predict(request)
        t2 = time.perf_counter()
        best, best_key = None, -1.0
        for cand in [answer, *answer.alternatives]:
            part = np.asarray(cand.mask, bool)
            if part.shape != local.shape:
                continue
            mask = np.zeros_like(carried)
            mask[y0:y1, x0:x1] = part
            agree = masks.mask_iou(mask, carried) if mask.any() else 0.0
            score = float(min(1.0, max(0.0, cand.score)))
            if score * agree > best_key:
                best, best_key = (mask, score, agree), score * agree
        if best is None:
            return StepResult(np.zeros_like(carried), carried, 0.0, 0.0, 0.0, {"flow": (t1 - t0) * 1e3})
        mask, score, agree = best
        if self.colour_floor is not None and mask.any():
            # Without a keyframe the previous frame's answer is the colour evidence there is.
            model = self._colour_model(anchor) if anchor is not None else _region_model(prev.image, prev_mask)
            mask = self._recolour(mask, carried, image, (y0, y1, x0, x1), model)
            agree = masks.mask_iou(mask, carried) if mask.any() else 0.0
        return StepResult(mask, carried, score * agree, score, agree,
                          {"flow": (t1 - t0) * 1e3, "backend": (t2 - t1) * 1e3})


    def _colour_model(self, anchor: Anchor) -> ColourModel:
        key = (anchor.image_id, str(anchor.rle.get("counts", ""))[:64] + str(len(str(anchor.rle.get("counts", "")))))
        model = self._models.get(key)
        if model is None:
            model = _region_model(anchor.image, masks.decode(anchor.rle))
            if len(self._models) > 16:
                self._models.clear()
            self._models[key] = model
        return model

    def _recolour(self, mask: np.ndarray, carried: np.ndarray, image: ImageInput,
                  window: tuple[int, int, int, int], model: ColourModel) -> np.ndarray:
        """The answer without pixels whose colour was clearly background on the keyframe; only the
        parts that still overlap the carried mask are kept."""
        y0, y1, x0, x1 = window
        prob = model.probability(image.pixels)
        if prob.shape != (y1 - y0, x1 - x0):
            prob = cv2.resize(prob.astype(np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        local = mask[y0:y1, x0:x1] & (prob >= self.colour_floor)
        local = cv2.morphologyEx(local.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        count, labels = cv2.connectedComponents(local, connectivity=8)
        hit = np.unique(labels[(local > 0) & carried[y0:y1, x0:x1]])
        keep = np.zeros(count, bool)
        keep[hit[hit > 0]] = True
        out = np.zeros_like(mask)
        out[y0:y1, x0:x1] = keep[labels]
        return out if out.any() else mask

    def _window(self, carried: np.ndarray) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1) the backend looks at: the carried mask's box plus the zoom margin."""
        h, w = carried.shape
        box = masks.bounds(carried)
        if self.zoom is None or box is None:
            return 0, h, 0, w
        y0, y1, x0, x1 = box
        side = max(y1 - y0, x1 - x0, 32)
        m = int(round(side * self.zoom))
        return max(0, y0 - m), min(h, y1 + m), max(0, x0 - m), min(w, x1 + m)


def _region_model(image: ImageInput, mask: np.ndarray) -> ColourModel:
    """The colour model of `mask` (full resolution) on `image`'s pixels (its model proxy)."""
    pixels = image.pixels
    if mask.shape != pixels.shape[:2]:
        mask = cv2.resize(mask.astype(np.uint8), (pixels.shape[1], pixels.shape[0]),
                          interpolation=cv2.INTER_NEAREST).astype(bool)
    return ColourModel(pixels, mask)


def _crop(image: ImageInput, window: tuple[int, int, int, int]) -> ImageInput:
    """The part of `image` inside the full-resolution window, as an image of its own."""
    y0, y1, x0, x1 = window
    if (y0, x0) == (0, 0) and (y1, x1) == tuple(image.full_size):
        return image
    s = image.scale
    py0, py1 = int(np.floor(y0 * s)), max(int(np.floor(y0 * s)) + 1, int(np.ceil(y1 * s)))
    px0, px1 = int(np.floor(x0 * s)), max(int(np.floor(x0 * s)) + 1, int(np.ceil(x1 * s)))
    pixels = np.ascontiguousarray(image.pixels[py0:py1, px0:px1])
    return ImageInput(key=f"{image.key}@{y0},{y1},{x0},{x1}", pixels=pixels, full_size=(y1 - y0, x1 - x0))


def _supports(backend: SegmentationBackend, kind: str) -> bool:
    try:
        return bool(backend.supports(kind))
    except Exception:  # a plugin backend that does not know the kind
        return False
