"""The native-resolution band refinement of the classical backend (classical_refine.py)."""

from __future__ import annotations

import cv2
import numpy as np

from seem_annotator.core.masks import mask_iou
from seem_annotator.engine.classical_refine import (
    RefinedAnswer,
    RefinedParts,
    band_width,
    refine_locally,
    refine_outline,
    seed_discs,
)


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """A noisy orange disc on a noisy blue ground (BGR) and its true mask."""
    rng = np.random.default_rng(0)
    truth = np.zeros((160, 200), np.uint8)
    cv2.circle(truth, (100, 80), 45, 1, -1)
    bgr = np.where(truth[..., None] > 0, (30, 120, 230), (200, 90, 40)).astype(np.float64)
    bgr += rng.normal(0, 12, bgr.shape)
    return np.clip(bgr, 0, 255).astype(np.uint8), truth.astype(bool)


def _coarse(truth: np.ndarray, factor: int = 4) -> np.ndarray:
    """The truth as a grid `factor` times coarser would give it back: blocky, off by a pixel or two."""
    h, w = truth.shape
    small = cv2.resize(truth.astype(np.uint8), (w // factor, h // factor), interpolation=cv2.INTER_AREA)
    small = cv2.dilate(small, np.ones((2, 2), np.uint8))  # the coarse cut overshoots a little
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)


def test_refinement_brings_a_coarse_outline_back_to_the_image_edges():
    bgr, truth = _scene()
    coarse = _coarse(truth)
    none = np.zeros_like(truth)
    refined = refine_outline(bgr, coarse, none, none, band_width(4.0))
    assert mask_iou(refined, truth) > max(0.97, mask_iou(coarse, truth) + 0.03)


def test_refinement_only_moves_the_outline_within_its_band():
    bgr, truth = _scene()
    coarse = np.zeros_like(truth)
    coarse[30:130, 50:150] = True  # a square around the disc: its corners are far from any edge
    none = np.zeros_like(truth)
    refined = refine_outline(bgr, coarse, none, none, 4)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))
    inner = cv2.erode(coarse.astype(np.uint8), k).astype(bool)
    near = cv2.dilate(coarse.astype(np.uint8), k).astype(bool)
    assert refined[inner].all() and not refined[~near].any()
    assert refined.sum() < coarse.sum()  # the corners were background: trimmed where the band allows


def test_refinement_keeps_the_seeds_and_the_limit():
    bgr, truth = _scene()
    coarse = _coarse(truth)
    pos = np.zeros_like(truth)
    neg = np.zeros_like(truth)
    pos[80, 100] = True
    neg[80, 56] = True  # just inside the disc's left edge: the person says it is not object
    fg, bg = seed_discs(pos, neg, 3)
    limit = np.zeros_like(truth)
    limit[:, :120] = True
    refined = refine_outline(bgr, coarse, fg, bg, band_width(4.0), limit=limit)
    assert refined[fg].all() and not refined[bg].any()
    assert not refined[:, 120:].any() and refined[:, 60:120].any()


def test_a_part_the_round_left_unchanged_is_not_cut_again_and_comes_back_the_same():
    bgr, truth = _scene()
    coarse = _coarse(truth)
    other = np.zeros_like(truth)
    other[5:25, 5:40] = True  # a second part, far from the disc: the one a later click changes
    none = np.zeros_like(truth)
    memo = RefinedParts()
    first = refine_outline(bgr, coarse | other, none, none, 3, memo=memo)
    assert memo.hits == 0 and np.array_equal(first, refine_outline(bgr, coarse | other, none, none, 3))
    grown = other.copy()
    grown[5:30, 5:50] = True
    second = refine_outline(bgr, coarse | grown, none, none, 3, memo=memo)
    assert memo.hits == 1  # the disc came from the memo, the grown part was cut again
    assert np.array_equal(second, refine_outline(bgr, coarse | grown, none, none, 3))
    pos = np.zeros_like(truth)
    pos[80, 100] = True  # a seed inside the disc's window changes what the disc is refined from
    refine_outline(bgr, coarse | grown, *seed_discs(pos, none, 3), 3, memo=memo)
    assert memo.hits == 2  # only the grown part, far from the seed, was found


def _bumped(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A round's coarse answer and the next one's, which differs only by a small bump on the left
    of the disc (a click there corrected that stretch of the outline)."""
    before = _coarse(truth)
    after = before.copy()
    after[72:88, 47:56] = True
    return before, after


def test_a_local_change_re_cuts_the_band_near_it_and_keeps_the_rest_as_refined():
    # The object has a knob on its left that the previous round's answer missed; this round's
    # coarse answer has it.
    bgr, truth = _scene()
    knob = np.zeros_like(truth)
    knob[70:90, 15:58] = True  # reaching farther out than the band
    bgr[knob & ~truth] = bgr[truth][: int((knob & ~truth).sum())]  # the disc's own noisy colours
    before, after = _coarse(truth), _coarse(truth | knob)
    none = np.zeros_like(truth)
    band = band_width(4.0)
    refined = refine_outline(bgr, before, none, none, band)
    assert refined[knob & ~truth].mean() < 0.4
    previous = RefinedAnswer.of(before, refined, none, none, None)
    local = refine_locally(bgr, after, none, none, band, previous)
    assert local is not None
    changed = after ^ before
    ys, xs = np.nonzero(changed)
    grow = 2 * band + 4
    window = np.zeros_like(truth)
    window[max(0, ys.min() - grow):ys.max() + 1 + grow, max(0, xs.min() - grow):xs.max() + 1 + grow] = True
    assert np.array_equal(local[~window], refined[~window])  # far from the change: as refined before
    # Near it the band is cut anew: the knob joins, with an outline as a whole refinement gives it.
    assert local[knob & ~truth].mean() > 0.9
    whole = refine_outline(bgr, after, none, none, band)
    assert mask_iou(local, truth | knob) > 0.97
    assert mask_iou(local, whole) > 0.99


def test_local_refinement_declines_what_is_not_a_local_change():
    bgr, truth = _scene()
    before, after = _bumped(truth)
    none = np.zeros_like(truth)
    band = band_width(4.0)
    refined = refine_outline(bgr, before, none, none, band)
    previous = RefinedAnswer.of(before, refined, none, none, None)
    # Nothing changed: the previous answer, not a cut.
    assert np.array_equal(refine_locally(bgr, before, none, none, band, previous), refined)
    # A box or polygon that came or went changes the whole outline's rules.
    limit = np.ones_like(truth)
    assert refine_locally(bgr, after, none, none, band, previous, limit=limit) is None
    # A new part is refined whole (as the first click there would give it), not as a patch.
    apart = before.copy()
    apart[10:40, 160:190] = True
    assert refine_locally(bgr, apart, none, none, band, previous) is None
    # A change over most of the answer: the whole outline.
    grown = cv2.dilate(before.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    assert refine_locally(bgr, grown, none, none, band, previous) is None
    # Another image size (the memory of another image): declined.
    assert refine_locally(bgr[:80], after[:80], none[:80], none[:80], band, previous) is None


def test_a_refined_answer_packs_and_gives_back_its_masks():
    rng = np.random.default_rng(1)
    masks = [rng.random((37, 53)) > 0.5 for _ in range(4)]
    answer = RefinedAnswer.of(*masks, None)
    for got, want in zip((answer.coarse, answer.refined, answer.fg, answer.bg), masks, strict=True):
        assert got.dtype == bool and np.array_equal(got, want)
    assert answer.limit is None
    assert sum(p.nbytes for p in answer.packed if p is not None) <= 4 * (37 * 53 // 8 + 1)
