"""The no-weights backend, `classical`: interactive segmentation with OpenCV's GrabCut.

It answers the same spatial prompts as SEEM (clicks, boxes, polygons, strokes, over many rounds) so
the app is useful before any checkpoint is downloaded. Each round is the textbook GrabCut clicker
made a good one, in two steps:

1. on a small grid (at most `max_side` pixels a side): the cut (classical_cut.py: memory of the
   previous answer, topology clean-up; GrabCut itself is graphcut.py, whose min-cut graph is kept
   per image so that each round re-cuts from the previous flow) with rules that make every
   prompt do what it says (classical_rules.py): a positive click outside the mask adds the region around it, a negative
   click inside removes one, a box or polygon answer stays inside it unless a positive prompt lies
   outside, a stroke acts as a line of clicks, and a first click on texture gives the
   texture-homogeneous area around it rather than a speck;
2. at the image's own resolution (up to `refine_side`): that answer's outline re-cut by GrabCut in
   a narrow band around it, everything farther inside or outside fixed (classical_refine.py), so
   the outline is as precise as the image for the cost of a thin ribbon; a later round that
   changed the answer locally re-cuts only the ribbon near that change (the round's memory keeps
   its refinement for the next).

`bench interactive --backend classical,grabcut-plain` compares it with the plain textbook clicker.

Text, voice and referring prompts need SEEM and raise ModelUnavailableError. Segment-everything
gives object-like regions of a merge hierarchy, ranked by objectness (classical_everything.py);
they have no names ("unknown"), their score is the objectness.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

from seem_annotator.core.prompts import SPATIAL_KINDS
from seem_annotator.engine.classical_cut import CutSettings, WorkingImage, guided_upsample
from seem_annotator.engine.classical_everything import object_regions
from seem_annotator.engine.classical_refine import (
    RefinedAnswer,
    RefinedParts,
    band_width,
    refine_locally,
    refine_outline,
    seed_discs,
)
from seem_annotator.engine.classical_rules import AloneCut, answer, first_answer, limit_in_force
from seem_annotator.engine.cut_helper import available_cores, shared_helper
from seem_annotator.engine.rasterize import PromptMasks, rasterize, resize_mask
from seem_annotator.engine.types import Candidate, DecodeRequest, ImageInput
from seem_annotator.errors import ModelUnavailableError

UNKNOWN = "unknown"
# Images whose min-cut graph stays built: the one being labelled and the two the app pre-encodes
# beside it (next and previous), so a click on any of them finds its graph ready.
KEPT_GRAPHS = 3
NEEDS_SEEM = ("{kind} prompts need a SEEM checkpoint; the classical backend only answers clicks, boxes, "
              "polygons and strokes - run `seem-annotator models download focalt_v1` and switch the "
              "backend to seem:focalt_v1")


class _Prepared:
    """Per-image work shared by every round: the working-resolution image (with, on demand, its
    texture-smoothed copy and its kept min-cut graph), the refinement grid (and, on demand, that
    in BGR), the refined parts of recent answers."""

    def __init__(self, image: ImageInput, max_side: int, refine_side: int, neighbours: int) -> None:
        full = np.ascontiguousarray(image.pixels[..., :3], dtype=np.uint8)
        # The refinement grid: the full image up to refine_side a side.
        self.fine_rgb = _shrunk(full, refine_side)
        self._fine_bgr: np.ndarray | None = None
        self.fine_size = self.fine_rgb.shape[:2]
        self.rgb = _shrunk(self.fine_rgb, max_side)
        # One person's rounds follow each other here: their first iterations get a graph of their
        # own (the helper's grids, cut_helper.py, keep one: its cuts are unrelated first answers).
        self.work = WorkingImage(cv2.cvtColor(self.rgb, cv2.COLOR_RGB2BGR), neighbours, separate_openings=True)
        self.size = self.rgb.shape[:2]
        # Prompts are in full-resolution pixels: grid pixels per full-resolution pixel.
        self.scale = self.size[0] / image.full_size[0]
        self.fine_scale = self.fine_size[0] / image.full_size[0]
        self.refined = RefinedParts()  # the refined parts of recent answers on this image

    def fine_bgr(self) -> np.ndarray:
        """The refinement grid in BGR (GrabCut's order), made on the first refinement."""
        if self._fine_bgr is None:
            self._fine_bgr = cv2.cvtColor(self.fine_rgb, cv2.COLOR_RGB2BGR)
        return self._fine_bgr


def _shrunk(rgb: np.ndarray, max_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    factor = min(1.0, max_side / max(h, w))
    size = (max(1, round(h * factor)), max(1, round(w * factor)))
    if size == (h, w):
        return rgb
    return cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class ClassicalMemory:
    """A round's answer on the working grid, how many prompts it answered, and its refinement
    (what the next round refines from when its change is local; None when not refined)."""

    image_key: str
    mask: np.ndarray
    prompts: int
    fine: RefinedAnswer | None = None


class ClassicalBackend:
    """OpenCV GrabCut backend (no weights). Thread-safe; CPU only.

    Sizes are in full-resolution pixels (the textbook clicker's: a 5 px hard disc inside a 20 px
    probable disc); the work runs on a grid of at most `max_side` pixels. The switches exist to
    measure what each addition to the textbook clicker is worth (`bench interactive`):
    from_previous (start GrabCut's colour models from the previous answer; off: from the seeds,
    as the textbook does), local (accept only changes connected to the newest prompt, of its sign),
    guided (snap the outline to the image at full size), keep_connected (drop small parts not
    connected to a seed), rules (the newest-prompt fallbacks and local updates), margin (crop
    around the previous answer, a fraction of its size; 0 = the whole image every round),
    refine_iterations (GrabCut iterations of the fine band refinement; 0 = off), refine_band (its
    least half-width in fine pixels, widened with the grid's coarseness), local_refine (a round
    that changed the previous answer locally re-cuts only the band near the change,
    classical_refine.refine_locally; off: the whole outline every round), first_iterations (GrabCut
    iterations of a cut on the whole grid: every round while margin is 0; three needed as few clicks
    as the textbook's five, at about a quarter less time), iterations (a round's on a crop, margin
    > 0), neighbours (of the whole grid's cut and a box's or polygon's crop: 4, only horizontal
    and vertical edges, a weaker smoothness that follows thin parts and a cheaper cut; 8,
    cv2.grabCut's; a box that refits a previous answer, as the video tracker asks, is always cut
    8-connected, see classical_cut.click_cut), refine_side (the largest side the
    refinement works at), second_core (make the cut a positive click may also need, what it gives
    alone, in a helper process beside the round's own cut, cut_helper.py; None: when this process
    may use two cores or more), solver ("graph": our GrabCut with each image's min-cut
    graph kept between rounds, graphcut.py; "opencv": cv2.grabCut, which rebuilds it every call)."""

    name = "classical"
    device = "cpu"

    def __init__(self, max_side: int = 320, cache_images: int = 8, hard_radius: float = 5.0,
                 probable_radius: float = 20.0, polygon_slack: float = 3.0, first_iterations: int = 3,
                 iterations: int = 5, from_previous: bool = False, local: bool = True,
                 guided: bool = True, keep_connected: bool = True, rules: bool = True,
                 margin: float = 0.0, refine_side: int = 1024, refine_band: int = 2,
                 refine_iterations: int = 2, solver: str = "graph", neighbours: int = 4,
                 second_core: bool | None = None, local_refine: bool = True) -> None:
        if solver not in ("graph", "opencv"):
            raise ValueError(f"unknown GrabCut solver {solver!r} (graph or opencv)")
        if neighbours not in (4, 8):
            raise ValueError(f"the grid's cut has 4 or 8 neighbours, not {neighbours}")
        self.neighbours = neighbours
        self.second_core = available_cores() >= 2 if second_core is None else second_core
        self.solver = solver
        self.refine_side = refine_side
        self.refine_band = refine_band
        self.refine_iterations = refine_iterations
        self.local_refine = local_refine
        self.margin = margin
        self.keep_connected = keep_connected
        self.rules = rules
        self.from_previous = from_previous
        self.guided = guided
        self.local = local
        self.max_side = max_side
        self.hard_radius = hard_radius
        self.probable_radius = probable_radius
        self.polygon_slack = polygon_slack
        self.first_iterations = first_iterations
        self.iterations = iterations
        self._cache: OrderedDict[str, _Prepared] = OrderedDict()
        self._cache_images = cache_images
        self._lock = threading.Lock()

    # -- SegmentationBackend -------------------------------------------------------------------

    def supports(self, prompt_kind: str) -> bool:
        return prompt_kind in SPATIAL_KINDS or prompt_kind == "everything"

    def encode(self, image: ImageInput) -> None:
        """Everything about the image that no prompt changes, made before the first click (the
        app encodes in the background when an image opens): the working grids, the min-cut
        graph and the texture-smoothed copy, the colour mixtures' compiled loops loaded; and the
        second-core helper is started (an image is open for clicking; without encode, as in the
        video tracker's runs, a click that needs the helper starts it)."""
        prep = self._prepared(image)
        from seem_annotator.engine.grabcut_kernels import warm_up  # numba: not at the app's start

        warm_up()  # compiled (first use) or loaded before the first click
        if self.solver == "graph":
            prep.work.grid()
            if self.second_core and self.rules:
                shared_helper().start()  # an image is open for clicking: have the helper ready
        prep.work.texture()

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
            new = None
            if prev is not None and seen < len(request.prompts) and self.rules:
                new = rasterize(request.prompts[seen:], prep.size, prep.scale)
            settings = self._settings(prep.scale)
            alone = self._alone_beside(request, prep, masks, prev, new, settings)
            work = answer(prep.work, masks, prev, new, settings, max(1, round(self.polygon_slack * prep.scale)),
                          self.local, alone)
        full, fine = self._full_size(work, request, prep)
        t2 = time.perf_counter()
        return Candidate(
            mask=full, score=1.0 if work.any() else 0.0, labels=[(UNKNOWN, 0.0)],
            memory=ClassicalMemory(request.image.key, work, len(request.prompts), fine),
            timings={"encode": (t1 - t0) * 1e3, "decode": (t2 - t1) * 1e3, "total": (t2 - t0) * 1e3},
            backend=self.name,
        )

    def segment_everything(self, image: ImageInput, labels: tuple[str, ...]) -> list[Candidate]:
        prep = self._prepared(image)
        t0 = time.perf_counter()
        regions = object_regions(prep.work.bgr, prep.work.texture())
        ms = (time.perf_counter() - t0) * 1e3
        return [Candidate(mask=resize_mask(mask, image.full_size), score=score, labels=[(UNKNOWN, score)],
                          timings={"decode": ms}, backend=self.name) for mask, score in regions]

    # -- internals -------------------------------------------------------------------------------

    def _prepared(self, image: ImageInput) -> _Prepared:
        with self._lock:
            prep = self._cache.get(image.key)
            if prep is not None:
                self._cache.move_to_end(image.key)
                return prep
        prep = _Prepared(image, self.max_side, self.refine_side, self.neighbours)
        with self._lock:
            self._cache[image.key] = prep
            while len(self._cache) > self._cache_images:
                self._cache.popitem(last=False)
            # A kept grid holds ~40 MB on a 320-pixel grid (two graphs of ~20 MB, 4-connected): only the
            # newest images keep one.
            for older in list(self._cache.values())[:-KEPT_GRAPHS]:
                older.work.drop_grid()
        return prep

    def _alone_beside(self, request: DecodeRequest, prep: _Prepared, masks: PromptMasks, prev: np.ndarray | None,
                      new: PromptMasks | None, s: CutSettings) -> AloneCut | None:
        """With a second core: what the newest positive seeds outside the previous answer give
        alone, started in the helper process now, while this thread makes the round's cut (a rule
        needs it when that cut adds only a speck). None: the rules cut it here if they need it."""
        if not self.second_core or self.solver != "graph" or not (masks.pos_clicks | masks.pos_strokes).any():
            return None
        if new is None or prev is None:
            return None
        new_pos = (new.pos_clicks | new.pos_strokes) & ~prev
        if not new_pos.any():
            return None
        token = f"{request.image.key}:{prep.size}:{self.neighbours}"
        helper = shared_helper()  # started by encode(), else now (then this cut waits for it once)
        ticket = helper.submit(token, prep.work, new_pos, masks.negative, s)
        if ticket is None:
            return None

        def alone(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
            made = None
            if np.array_equal(pos, ticket.pos) and np.array_equal(neg, ticket.neg):
                made = helper.take(ticket)
            return made if made is not None else first_answer(prep.work, pos, neg, s)

        return alone

    def _full_size(self, work: np.ndarray, request: DecodeRequest, prep: _Prepared
                   ) -> tuple[np.ndarray, RefinedAnswer | None]:
        """The working-grid answer at full resolution: its outline snapped to the image's edges by
        a guided filter (unless `guided` is off), then re-cut in a band at fine resolution
        (classical_refine.py; unless refine_iterations is 0), near the change only when the
        previous round's refinement is in the request's memory and the change is local. Also
        returns what the next round needs for that (None: not refined)."""
        full_size = request.image.full_size
        if not self.guided:
            return resize_mask(work, full_size), None
        fine = guided_upsample(work, prep.fine_rgb)
        if self.refine_iterations <= 0 or not work.any():
            return resize_mask(fine, full_size), None
        masks = rasterize(request.prompts, prep.fine_size, prep.fine_scale)
        fg, bg = seed_discs(masks.pos_clicks | masks.pos_strokes, masks.negative,
                            max(1, round(self.hard_radius * prep.fine_scale)))
        limit = limit_in_force(masks, max(1, round(self.polygon_slack * prep.fine_scale)))
        band = band_width(prep.fine_size[0] / prep.size[0], self.refine_band)
        refined = None
        memory = request.memory
        if (self.local_refine and isinstance(memory, ClassicalMemory) and memory.fine is not None
                and memory.image_key == request.image.key):
            refined = refine_locally(prep.fine_bgr(), fine, fg, bg, band, memory.fine, self.refine_iterations,
                                     limit, self.solver)
        if refined is None:
            refined = refine_outline(prep.fine_bgr(), fine, fg, bg, band, self.refine_iterations, limit,
                                     solver=self.solver, memo=prep.refined)
        return resize_mask(refined, full_size), RefinedAnswer.of(fine, refined, fg, bg, limit)

    def _settings(self, scale: float) -> CutSettings:
        return CutSettings(hard_radius=max(1, round(self.hard_radius * scale)),
                           probable_radius=max(3, round(self.probable_radius * scale)),
                           first_iterations=self.first_iterations, iterations=self.iterations,
                           from_previous=self.from_previous, keep_connected=self.keep_connected,
                           margin=self.margin, solver=self.solver)

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
