"""What each prompt means on the classical backend, and the fallbacks that make the cut obey it.

- Clicks and strokes are seeds of their sign (a stroke is a line of clicks: the same discs along it).
- A box says the object is inside it; a polygon says the object is its area, give or take a few
  pixels at its outline. Both stop limiting the answer once a positive prompt lies outside them.
- A positive click outside the previous answer adds the region around it: where the cut adds only
  a speck (hardly more than the click's own disc), at least what that click would give as a first
  click.
- A negative click on the previous answer (as shown, at full resolution) removes the region around
  it (bounded by image edges, the answer's outline and the positive seeds), never only the
  clicked pixels, and never nearly the whole answer (then only its texture-homogeneous area goes);
  what lies nearer a positive seed than the click (across the weakest edges) stays.
- A first click on texture gives the texture-homogeneous area around it when the cut finds only a
  speck (GrabCut's colour models cannot separate a textured object from itself).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from seem_annotator.engine.classical_cut import (
    CutSettings,
    WorkingImage,
    clean,
    click_cut,
    dilate,
    disk,
    roi_around,
)
from seem_annotator.engine.rasterize import PromptMasks

SPECK = 0.04  # a first answer under this fraction of the image is checked against its texture area
# Grid pixels: a negative click this close to the previous answer is on it (the answer the user
# sees is refined at full resolution, its outline up to a refinement band off the grid's).
REACH = 3


AloneCut = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (positive seeds, negative seeds) -> first_answer


def answer(image: WorkingImage, masks: PromptMasks, prev: np.ndarray | None, new: PromptMasks | None,
           s: CutSettings, polygon_slack: int, local: bool = True, alone: AloneCut | None = None) -> np.ndarray:
    """The object mask (bool, working grid) for all prompts so far; `new` holds the newest ones
    (None on a first round). `alone`: how to get what the newest positive seeds give alone as a
    first answer, when a rule needs it (default: first_answer here; the backend may have had it
    made beside this round's cut, cut_helper.py)."""
    polygons = masks.pos_regions
    neg = masks.negative
    seeds = masks.pos_clicks | masks.pos_strokes
    allowed = limit_region(masks, polygon_slack)
    if polygons.any():
        core = cv2.erode(polygons.astype(np.uint8), disk(polygon_slack)).astype(bool)
        # The polygon's inside is object, except around a negative prompt: there the cut decides.
        seeds = seeds | (core & ~dilate(neg, 2 * s.probable_radius))
    if allowed is None:
        out = first_answer(image, seeds, neg, s) if prev is None else click_cut(image, seeds, neg, prev, s)
    else:
        inside = seeds & allowed
        outside = seeds & ~allowed
        edit = new is not None and bool(new.boxes)
        out = click_cut(image, inside, neg, prev if prev is None else prev & allowed, s, allowed=allowed, edit=edit)
        if outside.any():
            # The object reaches past the box/polygon: grow from the prompts outside it without the
            # limit, adding only what lies outside (the re-cut inside would bring its background).
            grown = click_cut(image, seeds | out, neg, out | (prev if prev is not None else False), s)
            out = out | (grown & ~allowed)
    if new is not None and prev is not None:
        alone = alone or (lambda pos, neg: first_answer(image, pos, neg, s))
        out = _newest_rules(image, masks, seeds, prev, new, out, s, alone)
        if local and not new.boxes:
            out = local_update(prev, out, seeds, neg & ~seeds, new)
        new_neg = _negatives_on(new, prev)
        if new_neg.any() and not new.positive.any():
            out = clean(bound_removal(image.texture(), prev, out, new_neg, s.probable_radius), seeds & out, neg)
    return out


def limit_region(masks: PromptMasks, polygon_slack: int) -> np.ndarray | None:
    """Where the boxes and polygons (grown by `polygon_slack`) say the object is, or None when
    there is neither."""
    allowed = masks.box_region
    if masks.pos_regions.any():
        near = dilate(masks.pos_regions, polygon_slack)
        allowed = near if allowed is None else allowed & near
    return allowed


def limit_in_force(masks: PromptMasks, polygon_slack: int) -> np.ndarray | None:
    """limit_region, or None once a positive click or stroke lies outside it (the object reaches
    past the box or polygon)."""
    allowed = limit_region(masks, polygon_slack)
    if allowed is not None and ((masks.pos_clicks | masks.pos_strokes) & ~allowed).any():
        return None
    return allowed


def first_answer(image: WorkingImage, pos: np.ndarray, neg: np.ndarray, s: CutSettings) -> np.ndarray:
    """A first round from seeds alone: the cut, or the texture area around the clicks when the cut
    finds only a speck."""
    out = click_cut(image, pos, neg, None, s)
    h, w = out.shape
    if out.sum() >= SPECK * h * w:
        return out
    smooth = image.texture()
    area = np.zeros((h, w), bool)
    count, labels = cv2.connectedComponents(pos.astype(np.uint8), connectivity=8)
    for k in range(1, min(count, 9)):  # one flood per seed (a stroke is one seed)
        ys, xs = np.nonzero(labels == k)
        area |= homogeneous_area(smooth, int(xs[len(xs) // 2]), int(ys[len(ys) // 2]))
    area &= ~dilate(neg, s.hard_radius)
    if area.sum() > 3 * out.sum():
        return out | _component_at(area, dilate(pos, 1))
    return out


def _component_at(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The parts of `mask` (8-connected) that touch `seed`."""
    if not (mask & seed).any():
        return np.zeros_like(mask)
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(count, bool)
    keep[labels[seed & mask]] = True
    return keep[labels]


def _negatives_on(new: PromptMasks, prev: np.ndarray) -> np.ndarray:
    """The newest negative seeds that lie on the previous answer (within REACH of its outline)."""
    return (new.neg_clicks | new.neg_strokes) & dilate(prev, REACH)


def _newest_rules(image: WorkingImage, masks: PromptMasks, seeds: np.ndarray, prev: np.ndarray, new: PromptMasks,
                  out: np.ndarray, s: CutSettings, alone_cut: AloneCut) -> np.ndarray:
    # Only a speck triggers a fallback (no more than twice the click's own hard disc added, about
    # its hard disc removed): larger answers are the cut's considered decision, a thin part's too.
    speck = 3 * int(np.pi * s.hard_radius ** 2)
    new_pos = (new.pos_clicks | new.pos_strokes) & ~prev
    if new_pos.any():
        added = _component_at(out & ~prev, dilate(new_pos, 1))
        if added.sum() <= 2 * (dilate(new_pos, s.hard_radius) & ~prev).sum():
            # The cut kept little more than the seed: take what this click alone would give.
            alone = alone_cut(new_pos, masks.negative)
            alone = _component_at(alone & ~masks.negative, new_pos)
            if (alone & ~prev).sum() > added.sum():
                out = out | alone
    new_neg = _negatives_on(new, prev)
    if new_neg.any():
        removed = _component_at(prev & ~out, dilate(new_neg, REACH + 1))
        if removed.sum() < speck:
            out = out & ~_split_off(image.bgr, prev, seeds, new_neg)
        elif not new_pos.any() and (seeds & prev).any():
            # The click asked to remove what is around it: what lies nearer a positive seed than
            # the click stays (the round's fresh cut can lose a part the user added earlier).
            out = out | (prev & (_basins(image.bgr, prev, seeds, new_neg) == POSITIVE_BASIN))
    return out


def _split_off(bgr: np.ndarray, prev: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """The part of `prev` nearer (across the weakest edges) to the negative seed than to the positive
    seeds or the answer's own outline."""
    return (_basins(bgr, prev, pos, neg) == NEGATIVE_BASIN) | dilate(neg, 2) & prev


POSITIVE_BASIN, NEGATIVE_BASIN, OUTSIDE_BASIN = 1, 2, 3


def _basins(bgr: np.ndarray, prev: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """int32 (h, w): which seed each pixel of `prev` is nearest across the weakest edges, a watershed
    from the positive seeds, the negative seeds and the outside of `prev` (its *_BASIN); 0 off
    `prev`'s neighbourhood."""
    y0, y1, x0, x1 = roi_around(prev | neg, 0.05, minimum=2)
    p, n, q = prev[y0:y1, x0:x1], neg[y0:y1, x0:x1], pos[y0:y1, x0:x1]
    markers = np.zeros(p.shape, np.int32)
    markers[~p] = OUTSIDE_BASIN
    markers[q & p] = POSITIVE_BASIN
    markers[n] = NEGATIVE_BASIN
    smooth = cv2.bilateralFilter(np.ascontiguousarray(bgr[y0:y1, x0:x1]), 7, 40, 5)
    cv2.watershed(smooth, markers)
    out = np.zeros(prev.shape, np.int32)
    out[y0:y1, x0:x1] = np.where(p, markers, 0)
    return out


def bound_removal(texture: np.ndarray, prev: np.ndarray, out: np.ndarray, new_neg: np.ndarray, radius: int,
                  most: float = 0.9) -> np.ndarray:
    """`out`, unless the newest negative clicks removed more than `most` of `prev`: then only what
    lies around them and is connected to them is removed (their texture-homogeneous area within
    `prev`, or their disc of `radius`). A negative click on the object's edge can make the round's
    fresh cut lose nearly the whole object; the click asked to remove what is around it."""
    removed = prev & ~out
    if removed.sum() <= most * prev.sum():
        return out
    near = dilate(new_neg, radius)
    count, labels = cv2.connectedComponents(new_neg.astype(np.uint8), connectivity=8)
    for k in range(1, min(count, 9)):
        ys, xs = np.nonzero(labels == k)
        near |= dilate(homogeneous_area(texture, int(xs[len(xs) // 2]), int(ys[len(ys) // 2])) & prev, 2)
    return out | (removed & ~_component_at(removed & near, dilate(new_neg, REACH + 1)))


def homogeneous_area(smooth: np.ndarray, x: int, y: int, largest: float = 0.35) -> np.ndarray:
    """The area of similar texture around (x, y) on a texture-smoothed image: a flood fill within a
    colour range of the click's smoothed colour, the widest range whose area stays object-sized
    (at most `largest` of the image)."""
    h, w = smooth.shape[:2]
    region = np.zeros((h, w), bool)
    for tolerance in (24, 18, 14, 10, 6):
        flood = np.zeros((h + 2, w + 2), np.uint8)
        flags = 4 | cv2.FLOODFILL_FIXED_RANGE | cv2.FLOODFILL_MASK_ONLY | (1 << 8)
        cv2.floodFill(smooth, flood, (int(x), int(y)), 0, (tolerance,) * 3, (tolerance,) * 3, flags)
        region = flood[1:-1, 1:-1].astype(bool)
        if region.sum() <= largest * h * w:
            break
    return cv2.morphologyEx(region.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8)).astype(bool)


def local_update(prev: np.ndarray, out: np.ndarray, pos: np.ndarray, neg: np.ndarray, new: PromptMasks
                 ) -> np.ndarray:
    """Accept only the changes connected to the newest prompts; elsewhere keep the previous answer
    (a click fixes one error without disturbing what earlier rounds got right). pos/neg: the
    seeds that must hold."""
    touched = dilate(new.positive | new.negative, 2)
    diff = out != prev
    changed = _component_at(diff, touched)
    # A prompt never does the opposite of what it asks: a positive one only adds, a negative one
    # only removes (with both signs new, both kinds of change are taken).
    if not new.negative.any():
        changed &= out
    if not new.positive.any():
        changed &= ~out
    result = np.where(changed, out, prev)
    result[pos] = True
    result[neg] = False
    return clean(result, pos | (prev & result), neg)
