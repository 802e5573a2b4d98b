"""The SEEM predictor on the tiny random-weight fixture models (answers are noise; the plumbing,
caching, determinism and reduced == full equality are real)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import seem_fixture_dirs

from seem_annotator.core import masks as rle_masks
from seem_annotator.core.prompts import (
    BoxPrompt,
    PointPrompt,
    PolygonPrompt,
    ReferringPrompt,
    StrokePrompt,
    TextPrompt,
    VoicePrompt,
)
from seem_annotator.engine.labels import UNKNOWN, LabelVocabulary
from seem_annotator.engine.predictor import SeemMemory, SeemPredictor
from seem_annotator.engine.rasterize import rasterize
from seem_annotator.engine.types import DecodeRequest, ImageInput, SegmentationBackend
from seem_annotator.errors import UserError
from seem_annotator.model.config import load_config
from seem_annotator.model.sampler import TorchSampler
from seem_annotator.model.seem import build_seem

pytestmark = pytest.mark.slow
LABELS = ("red box", "blue box", "tree")


@functools.cache
def _model(folder: str):
    d = Path(folder)
    torch.set_grad_enabled(False)
    model = build_seem(load_config(d / "config.yaml")).eval()
    model.load_state_dict(torch.load(d / "state_dict.pt", weights_only=True, map_location="cpu"), strict=True)
    image = torch.load(d / "inputs.pt", weights_only=False)["image"].permute(1, 2, 0).numpy().copy()
    return model, image


def _predictor(folder: Path) -> tuple[SeemPredictor, ImageInput]:
    """One predictor per fixture for the whole module (its feature cache spares re-encoding)."""
    return _cached_predictor(str(folder))


@functools.cache
def _cached_predictor(folder: str) -> tuple[SeemPredictor, ImageInput]:
    model, pixels = _model(folder)
    pred = SeemPredictor(model, name="seem:test", short_side=min(pixels.shape[:2]),
                         class_names=["red box", "blue box"])
    return pred, ImageInput(key=f"{Path(folder).name}-image", pixels=pixels, full_size=pixels.shape[:2])


@pytest.fixture(scope="module")
def focalt() -> Path:
    dirs = [d for d in seem_fixture_dirs() if "focalt" in d.name]
    if not dirs:
        pytest.skip("no Focal-T fixture under ../shared/seem/fixtures")
    return dirs[0]


def _request(image, prompts, rnd=0, **kw) -> DecodeRequest:
    return DecodeRequest(image=image, object_id="o", round_index=rnd, prompts=tuple(prompts), labels=LABELS, **kw)


SESSIONS = [
    [PointPrompt(70, 55)],
    [PointPrompt(70, 55), PointPrompt(165, 110, False)],
    [StrokePrompt(((48.0, 38.0), (60.0, 50.0)), 3.0), PointPrompt(150, 100)],
    [PolygonPrompt(((45.0, 35.0), (95.0, 35.0), (95.0, 75.0))), PointPrompt(20, 20, False)],
]


def test_reduced_pass_selects_the_same_mask_as_the_full_pass(seem_fixture_dir: Path):
    # Every session on the small Focal-T fixture; two on the others (a 1024x1024 ViT is slow on CPU).
    sessions = SESSIONS if "focalt" in seem_fixture_dir.name else SESSIONS[1:3]
    for prompts in sessions:
        _check_reduced_equals_full(seem_fixture_dir, prompts)


def _check_reduced_equals_full(folder: Path, prompts: list) -> None:
    pred, image = _predictor(folder)
    reduced = pred.predict(_request(image, prompts, seed=3))
    pred.reduced = False
    full = pred.predict(_request(image, prompts, seed=3))
    pred.reduced = True
    assert np.array_equal(reduced.mask, full.mask)
    assert reduced.score == pytest.approx(full.score, abs=1e-5)
    # ... and both are what the model's own full pass selects with the same seeded sampler.
    feats = pred._encoded(image).features
    pm = rasterize(prompts, feats.image_hw, 1.0)
    res = pred.model.decode_spatial(feats, pred._pad(pm.positive, feats), pred._pad(pm.negative, feats),
                                    sampler=TorchSampler(seed=3), object_queries=True)
    ref = pred.model.to_image(res.mask_logits, feats)[0].numpy() > 0
    assert np.array_equal(full.mask, ref)
    # a second round with the first round's memory: reduced == full again
    nxt = prompts + [PointPrompt(30, 120, False)]
    r2 = pred.predict(_request(image, nxt, 1, memory=reduced.memory, seed=3))
    pred.reduced = False
    f2 = pred.predict(_request(image, nxt, 1, memory=reduced.memory, seed=3))
    pred.reduced = True
    assert np.array_equal(r2.mask, f2.mask)


def test_protocol_determinism_timings_and_cache(focalt: Path):
    pred, image = _predictor(focalt)
    assert isinstance(pred, SegmentationBackend)
    assert all(pred.supports(k) for k in ("point", "box", "text", "voice", "referring", "everything"))
    first = pred.predict(_request(image, [PointPrompt(70, 55)], seed=5))
    again = pred.predict(_request(image, [PointPrompt(70, 55)], seed=5))
    assert np.array_equal(first.mask, again.mask) and first.score == again.score
    assert first.mask.shape == image.full_size and first.mask.dtype == bool
    assert {"encode", "decode", "total"} <= set(first.timings)
    assert again.timings["encode"] < 50  # features came from the cache
    assert pred.cache.hits >= 1 and (image.key, pred.input_size(*image.full_size)) in pred.cache
    assert isinstance(first.memory, SeemMemory) and first.memory.logits.ndim == 4
    assert first.labels and first.labels[0][0] in (*LABELS, UNKNOWN)
    assert first.backend == "seem:test"


def test_feature_cache_is_bounded_in_bytes(focalt: Path):
    pred, image = _predictor(focalt)
    size = pred._encoded(image).nbytes()
    small = SeemPredictor(pred.model, short_side=pred.short_side, cache_bytes=int(size * 1.5))
    other = ImageInput(key="other", pixels=image.pixels[::-1].copy(), full_size=image.full_size)
    small.encode(image)
    small.encode(other)
    assert len(small.cache) == 1 and small.cache.nbytes <= small.cache.budget
    assert ("other", small.input_size(*image.full_size)) in small.cache
    # the worker's out-of-memory fallback: half the input size, cached features dropped
    before = small.input_size(*image.full_size)
    small.reduce_input()
    assert len(small.cache) == 0 and small.input_size(*image.full_size)[0] < before[0]
    assert small.predict(_request(other, [PointPrompt(70, 55)])).mask.shape == image.full_size


def test_memory_from_persisted_mask_and_foreign_memory(focalt: Path):
    pred, image = _predictor(focalt)
    first = pred.predict(_request(image, [PointPrompt(70, 55)]))
    prompts = [PointPrompt(70, 55), PointPrompt(150, 100)]
    with_mask = pred.predict(_request(image, prompts, 1, previous_mask=first.mask))
    assert with_mask.mask.shape == image.full_size
    logits = pred._previous_logits(_request(image, prompts, 1, previous_mask=first.mask),
                                   pred._encoded(image).features)
    assert logits is not None and logits.shape == first.memory.logits.shape
    assert set(torch.unique(logits).tolist()) <= {-10.0, 10.0}
    # memory of another image is ignored (same answer as no memory at all)
    foreign = SeemMemory("another-image", first.memory.input_hw, first.memory.logits)
    a = pred.predict(_request(image, prompts, 1, memory=foreign))
    b = pred.predict(_request(image, prompts, 1))
    assert np.array_equal(a.mask, b.mask)


def test_box_answer_is_constrained_to_the_box(focalt: Path):
    pred, image = _predictor(focalt)
    cand = pred.predict(_request(image, [BoxPrompt(40, 30, 100, 80)]))
    ys, xs = np.nonzero(cand.mask)
    if len(xs):  # random weights may answer with an empty mask; never with pixels far outside
        margin = 0.01 * max(image.full_size) + 1
        assert xs.min() >= 40 - margin and xs.max() <= 100 + margin
        assert ys.min() >= 30 - margin and ys.max() <= 80 + margin


def test_text_voice_referring_and_mixed_prompts(focalt: Path):
    pred, image = _predictor(focalt)
    text = pred.predict(_request(image, [TextPrompt("the red box")]))
    voice = pred.predict(_request(image, [VoicePrompt("the red box")]))
    assert np.array_equal(text.mask, voice.mask)  # a transcript is used exactly like typed text
    assert len(pred._texts) == 1  # token embeddings cached per phrase
    mixed = pred.predict(_request(image, [PointPrompt(70, 55), TextPrompt("the red box")]))
    assert mixed.mask.shape == image.full_size
    region = np.zeros(image.full_size, bool)
    region[30:80, 40:100] = True
    ref_prompt = ReferringPrompt(7, rle_masks.encode(region))
    other = ImageInput(key="target", pixels=image.pixels[:, ::-1].copy(), full_size=image.full_size)
    refer = pred.predict(_request(other, [ref_prompt], references={7: image}))
    assert refer.mask.shape == image.full_size and isinstance(refer.memory, SeemMemory)
    assert len(pred._references) == 1
    pred.predict(_request(other, [ref_prompt], references={7: image}))
    assert len(pred._references) == 1  # prompt tokens reused
    with pytest.raises(UserError):
        pred.predict(_request(other, [ref_prompt]))  # reference image not supplied


def test_only_negative_prompts_and_alternatives(focalt: Path):
    pred, image = _predictor(focalt)
    empty = pred.predict(_request(image, [PointPrompt(10, 10, False)]))
    assert not empty.mask.any() and empty.score == 0.0
    seen_alternative = False
    for x in range(20, 220, 25):
        cand = pred.predict(_request(image, [PointPrompt(x, 75)]))
        for alt in cand.alternatives:
            seen_alternative = True
            assert alt.score <= cand.score and alt.mask.shape == cand.mask.shape
            assert rle_masks.mask_iou(alt.mask, cand.mask) < 0.9
    assert seen_alternative  # three near-uniform random-weight candidates: runners-up are close


def test_segment_everything_gives_labelled_candidates(focalt: Path):
    pred, image = _predictor(focalt)
    cands = pred.segment_everything(image, ("red box", "blue box"))
    assert cands, "the fixture's panoptic pass keeps segments at its 0.05 threshold"
    for c in cands:
        assert c.mask.shape == image.full_size and c.mask.any()
        assert c.labels[0][0] in ("red box", "blue box", UNKNOWN)
    # without project labels the model's own class names are used
    own = pred.segment_everything(image, ())
    assert {c.labels[0][0] for c in own} <= {"red box", "blue box"}


def test_label_vocabulary_caches_per_name_and_says_unknown(focalt: Path):
    pred, _image = _predictor(focalt)
    vocab = LabelVocabulary(pred.model.language)
    emb = vocab.embeddings(["cat", "dog"])
    assert emb.shape == (2, pred.model.language.dim_proj)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(2), atol=1e-5)
    vocab.embeddings(["cat", "dog", "bird"])
    assert vocab.embedded == 3  # only "bird" was new
    # a caption equal to a label's embedding proposes that label first
    table = vocab.embeddings(["cat", "dog", "bird", "background"])
    props = vocab.propose(table[1] * 5, ["cat", "dog", "bird"])
    assert props[0][0][0] in ("dog", UNKNOWN)
    names = [n for n, _ in props[0]]
    assert "dog" in names[:2]
    # the background embedding itself gives "unknown"
    assert vocab.propose(table[3] * 5, ["cat", "dog", "bird"])[0][0][0] == UNKNOWN
    assert vocab.propose(table[0], [])[0] == [(UNKNOWN, 1.0)]


def test_memory_stream_prepared_after_an_answer_gives_the_same_next_round(focalt: Path, monkeypatch):
    from seem_annotator.model import seem_decoder

    pred, image = _predictor(focalt)
    pred._streams.clear()
    inline_masks = []
    real = seem_decoder.memory_mask

    def counting(*args, **kwargs):
        inline_masks.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(seem_decoder, "memory_mask", counting)
    first = pred.predict(_request(image, [PointPrompt(70, 55)], seed=2))
    prompts = [PointPrompt(70, 55), PointPrompt(150, 100, False)]
    cold = pred.predict(_request(image, prompts, 1, memory=first.memory, seed=2))
    assert inline_masks  # no stream yet: the memories ran inside the round
    assert pred.prepare_next(first) > 0
    assert pred.prepare_next(first) == 0  # already prepared
    inline_masks.clear()
    warm = pred.predict(_request(image, prompts, 1, memory=first.memory, seed=2))
    assert not inline_masks  # the prepared stream replaced them
    assert np.array_equal(cold.mask, warm.mask) and warm.score == pytest.approx(cold.score, abs=1e-6)
    # nothing to prepare without a SEEM memory; a smaller input drops the prepared streams
    assert pred.prepare_next(type(first)(mask=first.mask)) == 0
    pred.reduce_input()
    assert not pred._streams
    pred.short_side, pred.max_side = min(image.pixels.shape[:2]), 1333


def test_masks_come_back_at_the_photos_full_resolution(focalt: Path):
    """A photo bigger than the model input: the mask is the bilinear resize of the input-size
    logits to the photo's size (computed over the object's box only), with the same answer."""
    import torch.nn.functional as F

    pred, image = _predictor(focalt)
    h, w = image.full_size
    photo = ImageInput(key=image.key, pixels=image.pixels, full_size=(3 * h + 1, 3 * w + 2))
    for prompts in SESSIONS:
        cand = pred.predict(_request(photo, prompts, seed=4))
        small = pred.predict(_request(image, prompts, seed=4))
        assert cand.mask.shape == photo.full_size and cand.score == pytest.approx(small.score)
        logits = pred.model.to_image(cand.memory.logits, pred._encoded(photo).features)
        ref = F.interpolate(logits[None], size=photo.full_size, mode="bilinear", align_corners=False)[0, 0] > 0
        assert np.array_equal(cand.mask, ref.numpy())
