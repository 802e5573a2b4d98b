"""The no-weights backend: interactive segmentation with classical OpenCV tools.

It answers the same spatial prompts as SEEM (clicks, boxes, polygons, strokes, over many rounds) so
the app is useful before any checkpoint is downloaded. One round:

1. Seeds: positive prompts are hard foreground, negative prompts hard background; outside every box
   is hard background. With no box, a ring just inside the image border is a weak background
   marker, except where the previous round's mask reached (the user kept that as object).
2. Watershed from the seeds on the edge-preserving smoothed image gives the first split (each
   pixel joins the seed it reaches across the weakest edges) - this is what lets one negative click
   cut away a whole wrongly included region, and one positive click add a whole missed part.
3. GrabCut (colour models + graph cut) refines only a band around that split's boundary; left free
   it would spread into every similarly coloured neighbour. A box alone is plain GrabCut in the box.
   A positive prompt outside the box means the object reaches past it: the region around that
   prompt is grown on its own and added to the box's answer (never taking any of it away).
4. Only parts connected to a positive prompt are kept, small holes are filled.
5. From the second round on, only changes connected to the newest prompts are accepted; the rest
   of the previous round's mask (its memory) is kept, so a click fixes one error without
   disturbing what earlier rounds got right.

Text, voice and referring prompts need SEEM and raise ModelUnavailableError. Segment-everything is
a colour/position over-segmentation whose regions come back unlabelled ("unknown").
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

from seem_annotator.core.prompts import SPATIAL_KINDS
from seem_annotator.engine.rasterize import PromptMasks, rasterize, resize_mask
from seem_annotator.engine.types import Candidate, DecodeRequest, ImageInput
from seem_annotator.errors import ModelUnavailableError

UNKNOWN = "unknown"
NEEDS_SEEM = ("{kind} prompts need a SEEM checkpoint; the classical backend only answers clicks, boxes, "
              "polygons and strokes - run `seem-annotator models download focalt_v1` and switch the "
              "backend to seem:focalt_v1")


class _Prepared:
    """Per-image work shared by every round: the working-resolution image and its smoothed copy."""

    def __init__(self, image: ImageInput, max_side: int) -> None:
        h, w = image.pixels.shape[:2]
        factor = min(1.0, max_side / max(h, w))
        size = (max(1, round(h * factor)), max(1, round(w * factor)))
        rgb = np.ascontiguousarray(image.pixels[..., :3], dtype=np.uint8)
        if size != (h, w):
            rgb = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        self.rgb = rgb
        # Prompts are in full-resolution pixels: working pixels per full-resolution pixel.
        self.scale = size[0] / image.full_size[0]
        self.bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        # Watershed follows gradients: an edge-preserving blur stops it leaking through texture.
        self.smooth = cv2.bilateralFilter(self.bgr, 7, 40, 5)
        self.size = size
        self.nbytes = self.rgb.nbytes * 3


@dataclass(frozen=True)
class ClassicalMemory:
    """A round's answer on the working grid and how many prompts it answered."""

    image_key: str
    mask: np.ndarray
    prompts: int


class ClassicalBackend:
    """OpenCV watershed + GrabCut backend (no weights). Thread-safe; CPU only."""

    name = "classical"
    device = "cpu"

    def __init__(self, max_side: int = 320, iterations: int = 2, cache_images: int = 8,
                 local_updates: bool = True, band: int = 25, box_editing: bool = True) -> None:
        self.max_side = max_side
        self.box_editing = box_editing
        self.band = band
        self.iterations = iterations
        self.local_updates = local_updates
        self._cache: OrderedDict[str, _Prepared] = OrderedDict()
        self._cache_images = cache_images
        self._lock = threading.Lock()

    # -- SegmentationBackend -------------------------------------------------------------------

    def supports(self, prompt_kind: str) -> bool:
        return prompt_kind in SPATIAL_KINDS or prompt_kind == "everything"

    def encode(self, image: ImageInput) -> None:
        self._prepared(image)

    def predict(self, request: DecodeRequest) -> Candidate:
        t0 = time.perf_counter()
        for prompt in request.prompts:
            if prompt.kind not in SPATIAL_KINDS:
                raise ModelUnavailableError(NEEDS_SEEM.format(kind=prompt.kind.capitalize()))
        prep = self._prepared(request.image)
        t1 = time.perf_counter()
        masks = rasterize(request.prompts, prep.size, prep.scale)
        prev, seen = self._previous(request, prep.size)
        if not masks.has_positive():
            work = np.zeros(prep.size, bool)
        else:
            work = segment(prep, masks, prev, self.iterations, self.band, self.box_editing)
            new = request.prompts[seen:] if prev is not None and seen < len(request.prompts) else ()
            if self.local_updates and new and not any(p.kind == "box" for p in new):
                work = _local_update(prev, work, masks, rasterize(new, prep.size, prep.scale))
        full = resize_mask(work, request.image.full_size)
        t2 = time.perf_counter()
        return Candidate(
            mask=full, score=1.0 if work.any() else 0.0, labels=[(UNKNOWN, 0.0)],
            memory=ClassicalMemory(request.image.key, work, len(request.prompts)),
            timings={"encode": (t1 - t0) * 1e3, "decode": (t2 - t1) * 1e3, "total": (t2 - t0) * 1e3},
            backend=self.name,
        )

    def segment_everything(self, image: ImageInput, labels: tuple[str, ...]) -> list[Candidate]:
        prep = self._prepared(image)
        t0 = time.perf_counter()
        regions = oversegment(prep.smooth)
        ms = (time.perf_counter() - t0) * 1e3
        return [Candidate(mask=resize_mask(r, image.full_size), score=0.0, labels=[(UNKNOWN, 0.0)],
                          timings={"decode": ms}, backend=self.name) for r in regions]

    # -- internals -------------------------------------------------------------------------------

    def _prepared(self, image: ImageInput) -> _Prepared:
        with self._lock:
            prep = self._cache.get(image.key)
            if prep is not None:
                self._cache.move_to_end(image.key)
                return prep
        prep = _Prepared(image, self.max_side)
        with self._lock:
            self._cache[image.key] = prep
            while len(self._cache) > self._cache_images:
                self._cache.popitem(last=False)
        return prep

    @staticmethod
    def _previous(request: DecodeRequest, size: tuple[int, int]) -> tuple[np.ndarray | None, int]:
        """(previous mask on the working grid, how many of the prompts it already answered)."""
        memory = request.memory
        if isinstance(memory, ClassicalMemory) and memory.image_key == request.image.key:
            mask = memory.mask if memory.mask.shape == size else resize_mask(memory.mask, size)
            return mask, memory.prompts
        if request.previous_mask is not None:
            # Only the persisted mask survived: the newest prompt is the one to answer.
            return resize_mask(np.asarray(request.previous_mask, bool), size), len(request.prompts) - 1
        return None, 0


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def segment(prep: _Prepared, masks: PromptMasks, prev: np.ndarray | None, iterations: int,
            band: int = 15, box_editing: bool = True) -> np.ndarray:
    """One round on the working grid: bool (h, w) object mask."""
    fg = masks.positive.copy()
    bg = masks.negative & ~fg
    box = masks.box_region
    if box is None:
        return _clean(_free_round(prep, fg, bg, prev, iterations, band, ring=True), fg, None)
    inside = fg & box
    if not inside.any() or (prev is not None and box_editing):
        # GrabCut inside the box, its colour models from inside vs outside; later rounds start
        # from the previous answer with the clicks as hard constraints (GrabCut's own editing).
        init = np.where(box, cv2.GC_PR_FGD, cv2.GC_BGD).astype(np.uint8)
        if prev is not None:
            init[box & ~prev] = cv2.GC_PR_BGD
        result = _grabcut(prep.bgr, init, inside, bg | ~box, iterations)
    else:
        result = _free_round(prep, inside, bg | ~box, prev, iterations, band, ring=False)
    result = _clean(result, inside, box)
    outside = fg & ~box
    if outside.any():
        # A positive prompt outside the box says the object reaches past it: the box stops being
        # a limit for the region around that prompt, which is grown from it (the box's answer a
        # region of its own that the growth stops at) and added - it never takes away what the
        # box round found.
        grown = _free_round(prep, outside, bg, result, iterations, band, ring=True, known=result)
        result = _clean(result | grown, fg, box)
    return result


def _free_round(prep: _Prepared, fg: np.ndarray, bg: np.ndarray, prev: np.ndarray | None,
                iterations: int, band: int, ring: bool, known: np.ndarray | None = None) -> np.ndarray:
    """Watershed from the seeds, then GrabCut in a band around its boundary: bool (h, w).

    known: object pixels already decided; a watershed region of their own (so the seeds' region
    stops where they start) and hard foreground for GrabCut."""
    h, w = prep.size
    markers = np.zeros((h, w), np.int32)
    if ring and h > 4 and w > 4:
        # Weak assumption: the object does not fill the frame, so a ring just inside the border
        # (cv2.watershed overwrites the outermost pixels) seeds background - except where the
        # previous answer reached, which the user has accepted as object.
        border = np.zeros((h, w), bool)
        border[1, 1:-1] = border[-2, 1:-1] = border[1:-1, 1] = border[1:-1, -2] = True
        border &= ~fg
        if prev is not None:
            border &= ~prev
        markers[border] = 2
    markers[bg] = 2
    if known is not None:
        markers[known] = 3
    markers[fg] = 1
    cv2.watershed(prep.smooth, markers)
    init = markers == 1
    # GrabCut only decides near the watershed boundary: left free it grows into every
    # similarly coloured neighbour, while the watershed split already knows the topology.
    k = _disk(band)
    gc = np.where(init, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    gc[cv2.erode(init.astype(np.uint8), k).astype(bool)] = cv2.GC_FGD
    gc[~cv2.dilate(init.astype(np.uint8), k).astype(bool)] = cv2.GC_BGD
    if known is not None:
        gc[known] = cv2.GC_FGD
    return _grabcut(prep.bgr, gc, fg, bg, iterations)


def _grabcut(bgr: np.ndarray, gc: np.ndarray, fg: np.ndarray, bg: np.ndarray, iterations: int) -> np.ndarray:
    """GrabCut from an initial GC_* label map; prompts are hard constraints."""
    gc = gc.copy()
    gc[bg] = cv2.GC_BGD
    gc[fg] = cv2.GC_FGD
    is_fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    if not is_fg.any() or is_fg.all() or iterations <= 0:
        return is_fg  # GrabCut needs samples of both sides to fit its colour models
    # Only pixels GrabCut may change cost anything: run it on their bounding box plus a margin of
    # fixed pixels for the colour models (the rest of the image keeps its fixed labels).
    free = (gc == cv2.GC_PR_FGD) | (gc == cv2.GC_PR_BGD)
    if not free.any():
        return is_fg
    ys, xs = np.nonzero(free)
    h, w = gc.shape
    m = max(8, (ys.max() - ys.min() + xs.max() - xs.min()) // 8)
    y0, y1 = max(0, ys.min() - m), min(h, ys.max() + 1 + m)
    x0, x1 = max(0, xs.min() - m), min(w, xs.max() + 1 + m)
    crop = np.ascontiguousarray(gc[y0:y1, x0:x1])
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(np.ascontiguousarray(bgr[y0:y1, x0:x1]), crop, None, bgd, fgd, iterations,
                    cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return is_fg  # too few distinct colours for the colour models: keep the initial split
    gc[y0:y1, x0:x1] = crop
    return (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)


def _local_update(prev: np.ndarray, result: np.ndarray, masks: PromptMasks, new: PromptMasks) -> np.ndarray:
    """Accept only the changes connected to the newest prompts; elsewhere keep the previous answer
    (a click fixes one error without disturbing what earlier rounds got right)."""
    touched = cv2.dilate((new.positive | new.negative).astype(np.uint8), _disk(2)).astype(bool)
    diff = (result != prev).astype(np.uint8)
    count, labels = cv2.connectedComponents(diff, connectivity=8)
    accept = np.zeros(count, bool)
    hit = np.unique(labels[touched & (diff > 0)])
    accept[hit[hit > 0]] = True
    out = np.where(accept[labels], result, prev)
    out[masks.positive] = True
    out[masks.negative & ~masks.positive] = False
    return _clean(out, masks.positive, masks.box_region)


def _clean(mask: np.ndarray, fg: np.ndarray, box: np.ndarray | None) -> np.ndarray:
    """Keep the parts connected to a positive seed (and, with a box, the largest part)."""
    if not mask.any():
        return mask
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    seeded = np.unique(labels[fg & mask])
    keep[seeded[seeded > 0]] = True
    if box is not None or not keep.any():
        # A box says "the object is in here", not where: its largest part is kept too.
        keep[1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))] = True
    out = keep[labels]
    # Fill holes smaller than 1% of the object: GrabCut leaves pinholes at specular highlights.
    holes = ~out
    count, labels, stats, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=4)
    limit = max(16, out.sum() // 100)
    for k in range(1, count):
        x, y, ww, hh, area = stats[k]
        touches_border = x == 0 or y == 0 or x + ww == mask.shape[1] or y + hh == mask.shape[0]
        if area <= limit and not touches_border:
            out[labels == k] = True
    return out


def oversegment(smooth_bgr: np.ndarray, clusters: int = 12, min_fraction: float = 0.005,
                max_regions: int = 40) -> list[np.ndarray]:
    """Unlabelled regions covering the image: k-means on colour + position, split into connected
    parts, tiny parts dropped; largest first."""
    h, w = smooth_bgr.shape[:2]
    lab = cv2.cvtColor(smooth_bgr, cv2.COLOR_BGR2LAB).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Position weighs less than colour so one object of one colour stays one region.
    spatial = 60.0 / max(h, w)
    feats = np.concatenate([lab.reshape(-1, 3), (xx * spatial).reshape(-1, 1), (yy * spatial).reshape(-1, 1)], 1)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    cv2.setRNGSeed(0)  # deterministic: the same image gives the same regions
    k = min(clusters, max(1, h * w // 64))
    _, assign, _ = cv2.kmeans(feats, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    assign = assign.reshape(h, w).astype(np.uint8)
    assign = cv2.medianBlur(assign, 5)
    regions: list[np.ndarray] = []
    min_area = max(1, int(min_fraction * h * w))
    for c in range(k):
        count, labels, stats, _ = cv2.connectedComponentsWithStats((assign == c).astype(np.uint8), connectivity=8)
        for j in range(1, count):
            if stats[j, cv2.CC_STAT_AREA] >= min_area:
                regions.append(labels == j)
    regions.sort(key=lambda r: -int(r.sum()))
    return regions[:max_regions]
