"""Rasterising prompts and the classical (no-weights) backend on a synthetic scene (the prompt
rules on real photos: test_engine_classical_prompts.py)."""

from __future__ import annotations

import numpy as np
import pytest

from seem_annotator.core.masks import mask_iou
from seem_annotator.core.prompts import (
    BoxPrompt,
    PointPrompt,
    PolygonPrompt,
    ReferringPrompt,
    StrokePrompt,
    TextPrompt,
    VoicePrompt,
)
from seem_annotator.engine.backends import create_backend
from seem_annotator.engine.classical_backend import KEPT_GRAPHS, ClassicalBackend
from seem_annotator.engine.rasterize import rasterize, resize_mask
from seem_annotator.engine.types import DecodeRequest, ImageInput, SegmentationBackend
from seem_annotator.errors import ModelUnavailableError

# -- rasterize -----------------------------------------------------------------------------------


def test_click_is_the_official_3x3_square_at_scaled_position():
    m = rasterize([PointPrompt(20.7, 10.2, True), PointPrompt(0.0, 0.0, False)], (50, 60), scale=0.5)
    ys, xs = np.nonzero(m.pos_clicks)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (4, 6, 9, 11)  # pixel (10, 5) +- 1
    assert m.neg_clicks.sum() == 4  # clipped at the corner
    assert m.clicks == [(10, 5, True), (0, 0, False)]
    assert not m.pos_strokes.any() and not m.boxes


def test_stroke_width_polygon_fill_and_box():
    stroke = StrokePrompt(((10.0, 50.0), (90.0, 50.0)), width=9.0)
    poly = PolygonPrompt(((10.0, 10.0), (40.0, 10.0), (40.0, 30.0), (10.0, 30.0)), positive=False)
    m = rasterize([stroke, poly, BoxPrompt(80, 90, 60, 70)], (100, 100), scale=1.0)
    col = m.pos_strokes[:, 50]
    assert 8 <= col.sum() <= 11 and col[50]  # painted with its width around y = 50
    assert m.neg_regions[20, 25] and not m.neg_regions[35, 25]
    assert abs(int(m.neg_regions.sum()) - 30 * 20) < 80
    assert m.boxes == [(60, 70, 80, 90)]  # normalised, end-exclusive
    assert m.box_region.sum() == 20 * 20
    assert m.positive[50, 50] and m.negative[20, 20]


def test_resize_mask_roundtrip():
    mask = np.zeros((40, 60), bool)
    mask[10:30, 20:40] = True
    up = resize_mask(mask, (80, 120))
    assert up.shape == (80, 120) and mask_iou(resize_mask(up, (40, 60)), mask) > 0.95


# -- classical backend ---------------------------------------------------------------------------


def _scene(seed: int = 0) -> tuple[ImageInput, np.ndarray]:
    """A textured background with a red ellipse and a blue square (shading and noise)."""
    rng = np.random.default_rng(seed)
    h, w = 240, 320
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([90 + 40 * np.sin(xx / 9.0), 120 + 30 * np.cos(yy / 7.0), 80 + 0 * xx], -1)
    ellipse = ((xx - 110) / 60.0) ** 2 + ((yy - 120) / 45.0) ** 2 <= 1
    square = (xx > 210) & (xx < 280) & (yy > 60) & (yy < 140)
    img[ellipse] = (200, 40, 40)
    img[square] = (40, 50, 210)
    img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    return ImageInput(key=f"scene{seed}", pixels=img, full_size=(h, w)), ellipse


def _predict(backend, image, prompts, memory=None):
    return backend.predict(DecodeRequest(image=image, object_id="o", round_index=0, prompts=tuple(prompts),
                                         memory=memory))


def test_backend_protocol_and_supported_kinds():
    backend = create_backend("classical")
    assert isinstance(backend, SegmentationBackend) and isinstance(backend, ClassicalBackend)
    assert all(backend.supports(k) for k in ("point", "box", "polygon", "stroke", "everything"))
    assert not any(backend.supports(k) for k in ("text", "voice", "referring"))


@pytest.mark.parametrize("prompt", [TextPrompt("a dog"), VoicePrompt("the dog"),
                                    ReferringPrompt(3, {"size": [4, 4], "counts": "04"})])
def test_language_and_referring_prompts_say_how_to_get_seem(prompt):
    image, _ = _scene()
    with pytest.raises(ModelUnavailableError, match="models download focalt_v1"):
        _predict(ClassicalBackend(), image, [PointPrompt(110, 120), prompt])


def test_a_persons_prompts_are_cut_4_connected_and_a_box_refitting_an_answer_8_connected(monkeypatch):
    from seem_annotator.engine import graphcut

    made = []
    real = graphcut.GridCut.__init__

    def recording(self, bgr, neighbours=8, separate_openings=False):
        made.append((bgr.shape[:2], neighbours))
        real(self, bgr, neighbours, separate_openings)

    monkeypatch.setattr(graphcut.GridCut, "__init__", recording)
    image, truth = _scene()
    backend = ClassicalBackend()
    assert mask_iou(_predict(backend, image, [PointPrompt(110, 120)]).mask, truth) > 0.9
    assert [n for _, n in made] == [4]  # the image's kept grid
    made.clear()
    box = BoxPrompt(45, 70, 175, 170)
    first = _predict(backend, image, [box])
    assert mask_iou(first.mask, truth) > 0.9
    assert made and all(n == 4 for _, n in made)  # a person's box: its crop, made for the cut
    assert all(shape != (240, 320) for shape, _ in made)
    made.clear()
    # The video tracker's request: clicks in and around a carried mask, then a box that refits it.
    carried = np.zeros_like(truth)
    carried[80:165, 60:160] = True
    tracked = backend.predict(DecodeRequest(image=image, object_id="t", round_index=1, previous_mask=carried,
                                            prompts=(PointPrompt(110, 120), PointPrompt(20, 20, False), box)))
    assert mask_iou(tracked.mask, truth) > 0.9
    assert made and all(n == 8 for _, n in made)


def test_one_click_box_and_stroke_find_the_object():
    backend = ClassicalBackend()
    image, truth = _scene()
    for prompts in ([PointPrompt(110, 120)],
                    [BoxPrompt(45, 70, 175, 170)],
                    [StrokePrompt(((80.0, 120.0), (140.0, 125.0)), width=4)]):
        cand = _predict(backend, image, prompts)
        assert cand.mask.shape == truth.shape and cand.mask.dtype == bool
        assert mask_iou(cand.mask, truth) > 0.9, prompts
        assert cand.backend == "classical" and cand.labels == [("unknown", 0.0)]
        assert {"encode", "decode", "total"} <= set(cand.timings)


def test_a_polygon_inside_an_object_is_the_object_area_it_draws():
    # A polygon says "this area is the object": the answer is the polygon (give or take its
    # slack of a few pixels), not the whole ellipse it lies in.
    image, truth = _scene()
    cand = _predict(ClassicalBackend(), image,
                    [PolygonPrompt(((70.0, 100.0), (150.0, 100.0), (150.0, 140.0), (70.0, 140.0)))])
    drawn = np.zeros_like(truth)
    drawn[100:141, 70:151] = True
    near = np.zeros_like(truth)
    near[96:145, 66:155] = True
    core = np.zeros_like(truth)
    core[104:137, 74:147] = True
    assert not (cand.mask & ~near).any() and cand.mask[core].all()
    assert mask_iou(cand.mask, drawn) > 0.8


def test_negative_click_removes_a_wrongly_included_region_over_rounds():
    backend = ClassicalBackend()
    image, truth = _scene(1)
    square = np.zeros_like(truth)
    square[61:140, 211:280] = True
    # The previous round leaked onto the square; one negative click on it must remove all of it.
    previous = truth | square
    prompts = [PointPrompt(110, 120), PointPrompt(245, 100, False)]
    second = backend.predict(DecodeRequest(image=image, object_id="o", round_index=1, prompts=tuple(prompts),
                                           previous_mask=previous))
    assert (second.mask & square).sum() < 0.05 * square.sum()
    assert mask_iou(second.mask, truth) > 0.9
    # and a positive click on it brings it back (both parts kept)
    third = _predict(backend, image, [PointPrompt(110, 120), PointPrompt(245, 100)], memory=second.memory)
    assert (third.mask & square).sum() > 0.9 * square.sum()
    assert (third.mask & truth).sum() > 0.9 * truth.sum()


def test_full_size_answer_for_downscaled_proxy_and_previous_mask_without_memory():
    big, truth = _scene()
    proxy = ImageInput(key="proxy", pixels=big.pixels[::2, ::2].copy(), full_size=big.full_size)
    backend = ClassicalBackend()
    cand = _predict(backend, proxy, [PointPrompt(110, 120)])
    assert cand.mask.shape == big.full_size and mask_iou(cand.mask, truth) > 0.85
    request = DecodeRequest(image=proxy, object_id="o", round_index=1,
                            prompts=(PointPrompt(110, 120), PointPrompt(60, 125)), previous_mask=cand.mask)
    again = backend.predict(request)
    assert mask_iou(again.mask, truth) > 0.85


def test_only_negative_prompts_give_an_empty_mask():
    image, _ = _scene()
    cand = _predict(ClassicalBackend(), image, [PointPrompt(10, 10, False)])
    assert not cand.mask.any() and cand.score == 0.0


def test_deterministic():
    image, _ = _scene()
    a = _predict(ClassicalBackend(), image, [PointPrompt(110, 120), PointPrompt(250, 100, False)])
    b = _predict(ClassicalBackend(), image, [PointPrompt(110, 120), PointPrompt(250, 100, False)])
    assert np.array_equal(a.mask, b.mask)


def test_the_kept_graph_does_not_make_answers_depend_on_earlier_objects():
    """The image's min-cut graph is kept between rounds; an object's answer must not depend on
    what was cut on it before (another object, other rounds)."""
    image, ellipse = _scene()
    prompts = [PointPrompt(110, 120), PointPrompt(250, 100, False)]
    fresh = _predict(ClassicalBackend(), image, prompts)
    used = ClassicalBackend()
    _predict(used, image, [PointPrompt(245, 100)])  # the square first
    _predict(used, image, [PointPrompt(245, 100), PointPrompt(30, 30)])
    again = _predict(used, image, prompts)
    assert mask_iou(again.mask, fresh.mask) > 0.999
    # And cv2.grabCut as the cut finds the same object.
    opencv = _predict(ClassicalBackend(solver="opencv"), image, prompts)
    assert mask_iou(opencv.mask, ellipse) > 0.9 and mask_iou(fresh.mask, ellipse) > 0.9
    with pytest.raises(ValueError, match="solver"):
        ClassicalBackend(solver="maxflow")
    # cv2.grabCut's 8-connected graph finds it too (the default cuts 4-connected).
    assert mask_iou(_predict(ClassicalBackend(neighbours=8), image, prompts).mask, ellipse) > 0.9
    with pytest.raises(ValueError, match="4 or 8"):
        ClassicalBackend(neighbours=6)


def test_segment_everything_gives_unnamed_regions_ranked_by_objectness():
    image, truth = _scene()
    cands = ClassicalBackend().segment_everything(image, ("cat", "dog"))
    assert 2 <= len(cands) <= 30
    assert all(c.labels == [("unknown", c.score)] and c.mask.shape == truth.shape for c in cands)
    scores = [c.score for c in cands]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
    # the ellipse is a region of its own, and the most object-like one
    assert mask_iou(cands[0].mask, truth) > 0.8


def test_local_update_keeps_what_the_previous_round_got_right():
    backend = ClassicalBackend()
    image, _truth = _scene(2)
    prompts = [PointPrompt(110, 120), PointPrompt(245, 100)]
    first = _predict(backend, image, prompts)
    # a negative click on background far from both objects changes nothing of the answer
    second = backend.predict(DecodeRequest(image=image, object_id="o", round_index=1,
                                           prompts=tuple(prompts) + (PointPrompt(20, 220, False),),
                                           memory=first.memory))
    assert np.array_equal(second.memory.mask, first.memory.mask)
    assert second.memory.prompts == 3
    # memory of another image is not used
    other = ImageInput(key="other", pixels=image.pixels, full_size=image.full_size)
    third = backend.predict(DecodeRequest(image=other, object_id="o", round_index=1, prompts=tuple(prompts),
                                          memory=first.memory))
    assert np.array_equal(third.mask, first.mask)


def test_positive_click_outside_the_box_adds_its_region_and_keeps_the_object():
    backend = ClassicalBackend()
    image, truth = _scene(3)
    # The box misses the ellipse's right end (x > 150); a positive click there must add that end
    # and keep everything the box round found.
    box = BoxPrompt(45, 70, 150, 170)
    first = _predict(backend, image, [box])
    assert first.mask.sum() > 0.6 * truth.sum()
    click = PointPrompt(162, 120)
    for kwargs in ({"memory": first.memory}, {"previous_mask": first.mask}):
        second = backend.predict(DecodeRequest(image=image, object_id="o", round_index=1,
                                               prompts=(box, click), **kwargs))
        assert (second.mask & first.mask).sum() >= 0.98 * first.mask.sum()
        # inside the box the box round's answer stands: the click outside adds only outside it
        in_box = np.zeros_like(truth)
        in_box[70:170, 45:150] = True
        assert (second.mask & in_box & ~first.mask).sum() < 0.02 * first.mask.sum(), kwargs
        missed = truth & (np.mgrid[0:240, 0:320][1] > 152)
        assert (second.mask & missed).sum() > 0.8 * missed.sum(), kwargs
        assert mask_iou(second.mask, truth) > 0.85


def test_positive_click_on_the_sample_photo_never_shrinks_the_box_answer():
    from conftest import REPO_ROOT
    from PIL import Image

    pixels = np.asarray(Image.open(REPO_ROOT / "resources" / "samples" / "coffee.jpg").convert("RGB"))
    image = ImageInput(key="coffee", pixels=pixels, full_size=pixels.shape[:2])
    backend = ClassicalBackend()
    box = BoxPrompt(191, 38, 404, 277)  # a box round that misses part of the cup
    first = _predict(backend, image, [box])
    for click in (PointPrompt(146, 231), PointPrompt(417, 338)):  # saucer, outside the box
        second = backend.predict(DecodeRequest(image=image, object_id="o", round_index=1,
                                               prompts=(box, click), memory=first.memory))
        assert (second.mask & first.mask).sum() >= 0.98 * first.mask.sum(), click
        # the click adds the region around it, not a 3x3 island
        assert second.mask.sum() - first.mask.sum() > 1000, click


def test_positive_click_inside_the_box_keeps_the_answer_in_the_box():
    from conftest import REPO_ROOT
    from PIL import Image

    pixels = np.asarray(Image.open(REPO_ROOT / "resources" / "samples" / "astronaut.jpg").convert("RGB"))
    image = ImageInput(key="astronaut", pixels=pixels, full_size=pixels.shape[:2])
    backend = ClassicalBackend()
    # Found in the app: a box on the black helmet (the cut keeps only its rim), then a click on it.
    box, click = BoxPrompt(334, 323, 503, 508), PointPrompt(409, 433)
    near = np.zeros(image.full_size, bool)
    near[320:511, 331:506] = True  # the box and the working grid's few pixels of slack
    first = _predict(backend, image, [box])
    assert first.mask.any() and not (first.mask & ~near).any()
    second = _predict(backend, image, [box, click], memory=first.memory)
    assert second.mask[433, 409] and not (second.mask & ~near).any()


def test_negative_click_on_the_edge_of_the_mask_leaves_the_far_parts_alone():
    from conftest import REPO_ROOT
    from PIL import Image

    pixels = np.asarray(Image.open(REPO_ROOT / "resources" / "samples" / "chelsea.jpg").convert("RGB"))
    image = ImageInput(key="chelsea", pixels=pixels, full_size=pixels.shape[:2])
    backend = ClassicalBackend()
    # Found in the app (the clicks' exact coordinates): forehead, right cheek, then a negative
    # click on the left eye where the mask's edge runs; it left two specks around the positives.
    clicks = [PointPrompt(224.84, 39.45), PointPrompt(299.79, 179.48), PointPrompt(161.07, 109.13, False)]
    first = _predict(backend, image, clicks[:1])
    before = _predict(backend, image, clicks[:2], memory=first.memory)
    after = _predict(backend, image, clicks, memory=before.memory)
    yy, xx = np.mgrid[0:pixels.shape[0], 0:pixels.shape[1]]
    far = before.mask & ((xx - 161) ** 2 + (yy - 109) ** 2 > 60 ** 2)
    assert (after.mask & far).sum() >= 0.9 * far.sum()


def test_bound_removal_keeps_what_is_far_from_a_negative_click_that_emptied_the_answer():
    from seem_annotator.engine.classical_rules import bound_removal

    # Two flat regions: the click lands in the dark one; the fresh cut lost the whole answer.
    texture = np.full((80, 120, 3), 200, np.uint8)
    texture[:, :40] = 30
    prev = np.zeros((80, 120), bool)
    prev[10:70, 10:110] = True
    neg = np.zeros_like(prev)
    neg[40, 20] = True
    out = bound_removal(texture, prev, np.zeros_like(prev), neg, radius=5)
    assert not out[10:70, 10:38].any()  # the click's own flat area goes
    assert out[10:70, 45:110].all()  # the far side stays
    # A removal of less than 90% of the answer is the cut's decision and is left alone.
    cut = prev.copy()
    cut[10:70, 10:40] = False
    assert np.array_equal(bound_removal(texture, prev, cut, neg, radius=5), cut)


def test_only_the_newest_images_keep_their_min_cut_graph():
    backend = ClassicalBackend()
    images = [_scene(seed)[0] for seed in range(KEPT_GRAPHS + 2)]
    for image in images:
        backend.encode(image)
    assert [backend._cache[i.key].work._grid is not None for i in images] == [False, False] + [True] * KEPT_GRAPHS
    cand = _predict(backend, images[0], [PointPrompt(110, 120)])  # a dropped graph is built again
    assert cand.mask.any() and backend._cache[images[0].key].work._grid is not None


def test_clean_within_the_masks_box_is_cleaning_the_whole_image():
    import cv2

    from seem_annotator.engine.classical_cut import _clean_within, clean

    rng = np.random.default_rng(3)
    for trial in range(40):
        h, w = 120, 160
        blobs = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 4)
        mask = blobs > np.quantile(blobs, 0.85 + 0.1 * rng.random())
        if trial % 2:  # keep it in one corner, a small box
            mask[60:] = False
            mask[:, 80:] = False
        if trial % 5 == 0:
            mask[20:40, 20:40] = True
            mask[28:31, 28:31] = False  # a small hole, to be filled
        ys, xs = np.nonzero(mask)
        if not len(ys):
            continue
        fg = np.zeros_like(mask)
        fg[ys[0], xs[0]] = True
        bg = np.zeros_like(mask)
        bg[rng.integers(0, h, 3), rng.integers(0, w, 3)] = True
        for negative in (None, bg):
            kept = mask if negative is None else mask & ~negative
            assert np.array_equal(clean(mask, fg, negative), _clean_within(kept, fg, negative, 0.05)), trial


def test_roi_around_is_the_bounding_box_grown_by_its_margin():
    from seem_annotator.engine.classical_cut import roi_around

    rng = np.random.default_rng(5)
    for _ in range(300):
        h, w = rng.integers(1, 50, 2)
        region = rng.random((h, w)) < rng.choice([0.002, 0.05, 0.4])
        region[rng.integers(h), rng.integers(w)] = True
        margin, minimum = float(rng.choice([0.0, 0.1, 0.3])), int(rng.integers(0, 12))
        ys, xs = np.nonzero(region)
        my = max(minimum, int(margin * (ys.max() - ys.min() + 1)))
        mx = max(minimum, int(margin * (xs.max() - xs.min() + 1)))
        expected = (max(0, ys.min() - my), min(h, ys.max() + 1 + my), max(0, xs.min() - mx), min(w, xs.max() + 1 + mx))
        assert roi_around(region, margin, minimum) == tuple(int(v) for v in expected)
