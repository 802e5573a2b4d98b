"""Unit tests of the SEEM decoder side: layers, attention layout, spatial prompts, sampler,
post-processing, the SEEM API (reduced pass, referring prompts, v0) and key/shape manifests."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import SHARED

from seem_annotator.errors import CheckpointError
from seem_annotator.model.attention_layout import AttentionLayout, Group, GroupState
from seem_annotator.model.config import cfg_set, load_config
from seem_annotator.model.layers import CrossAttentionLayer, MultiHeadAttention
from seem_annotator.model.postprocess import instance_inference, panoptic_inference, resized_mask
from seem_annotator.model.sampler import ReplayError, ReplaySampler, TorchSampler
from seem_annotator.model.seem import SEEM, build_seem
from seem_annotator.model.seem_decoder import mask_logits
from seem_annotator.model.spatial_prompts import point_sample, sample_points_v0, sample_points_v1

torch.set_grad_enabled(False)

TINY_OVERRIDES = {
    "MODEL.BACKBONE.FOCAL.EMBED_DIM": 32, "MODEL.BACKBONE.FOCAL.DEPTHS": [1, 1, 1, 1],
    "MODEL.BACKBONE.FOCAL.FOCAL_LEVELS": [2, 2, 2, 2], "MODEL.ENCODER.CONVS_DIM": 64, "MODEL.ENCODER.MASK_DIM": 64,
    "MODEL.ENCODER.TRANSFORMER_ENC_LAYERS": 1, "MODEL.ENCODER.NUM_CLASSES": 4, "MODEL.DECODER.HIDDEN_DIM": 64,
    "MODEL.DECODER.NUM_OBJECT_QUERIES": 9, "MODEL.DECODER.NHEADS": 4, "MODEL.DECODER.DIM_FEEDFORWARD": 64,
    "MODEL.DECODER.DEC_LAYERS": 4, "MODEL.DECODER.MAX_SPATIAL_LEN": [10, 8, 6, 5], "MODEL.TEXT.WIDTH": 16,
    "MODEL.TEXT.LAYERS": 1, "MODEL.TEXT.HEADS": 2, "MODEL.DIM_PROJ": 64, "ATTENTION_ARCH.SPATIAL_MEMORIES": 6,
}


def tiny_seem(name: str = "focalt_v1", seed: int = 0) -> SEEM:
    """A bundled config shrunk with overrides (random weights, 5 class embeddings)."""
    cfg = load_config(name)
    for key, value in TINY_OVERRIDES.items():
        cfg_set(cfg, key, value)
    torch.manual_seed(seed)
    model = build_seem(cfg).eval()
    model.language.set_text_embeddings(F.normalize(torch.randn(5, 64), dim=-1))
    return model


def fake_features(model: SEEM, seed: int = 1, hw: tuple[int, int] = (64, 96)) -> Any:
    """Random pixel-decoder outputs for a padded image of size hw (decoder-only tests)."""
    g = torch.Generator().manual_seed(seed)
    h, w = hw
    ms = [torch.randn(1, 64, h // s, w // s, generator=g) for s in (32, 16, 8)]
    return model.features_from(torch.randn(1, 64, h // 4, w // 4, generator=g), ms, hw, (h - 5, w - 7))


def blob_masks(hw: tuple[int, int], boxes: list[tuple[int, int, int, int]]) -> torch.Tensor:
    out = torch.zeros(len(boxes), *hw, dtype=torch.bool)
    for i, (y0, x0, y1, x1) in enumerate(boxes):
        out[i, y0:y1, x0:x1] = True
    return out


@pytest.fixture(scope="module")
def v1() -> SEEM:
    return tiny_seem("focalt_v1")


@pytest.fixture(scope="module")
def v0() -> SEEM:
    return tiny_seem("focalt_v0")


# -- layers ------------------------------------------------------------------------------------
def test_attention_matches_torch_and_zeroes_fully_blocked_rows() -> None:
    torch.manual_seed(0)
    ours = MultiHeadAttention(16, 4)
    ref = torch.nn.MultiheadAttention(16, 4)
    ref.load_state_dict(ours.state_dict())
    q, k = torch.randn(5, 2, 16), torch.randn(7, 2, 16)
    mask = torch.rand(8, 5, 7) > 0.6
    mask[:, :, 0] = False  # no fully blocked row for the torch comparison
    expected = ref(q, k, k, attn_mask=mask, need_weights=False)[0]
    assert torch.allclose(ours(q, k, k, attn_mask=mask), expected, atol=1e-5)
    mask[:, 2, :] = True  # a fully blocked query gets zero attention: output = out_proj bias
    out = ours(q, k, k, attn_mask=mask)
    assert torch.allclose(out[2], ours.out_proj.bias.expand(2, 16), atol=1e-6)


# -- sampler -----------------------------------------------------------------------------------
class Capture(TorchSampler):
    def __init__(self) -> None:
        super().__init__(seed=0)
        self.probs: list[torch.Tensor] = []

    def multinomial(self, probs: torch.Tensor, num_samples: int, replacement: bool) -> torch.Tensor:
        self.probs.append(probs.clone())
        return super().multinomial(probs, num_samples, replacement)


def test_sample_points_v1_weights_objects_equally_and_keeps_row_major_order() -> None:
    mask = torch.zeros(2, 8, 10, dtype=torch.bool)
    mask[0, 1:3, 1:6] = True  # 10 pixels
    mask[1, 5, 7:9] = True  # 2 pixels
    cap = Capture()
    pts = sample_points_v1(mask, 5, cap)
    assert pts.shape == (3, 5)
    probs = cap.probs[0]
    assert torch.allclose(probs[:10], torch.full((10,), 1 / 20)) and torch.allclose(probs[10:], torch.full((2,), 1 / 4))
    flat = (pts[0] * 80 + pts[1] * 8 * 10 + pts[2] * 10).round()  # object, row, col in row-major rank
    assert torch.all(flat[1:] > flat[:-1])
    assert sample_points_v1(mask, 50, cap).shape == (3, 12)
    n = len(cap.probs)
    assert sample_points_v1(torch.zeros(1, 4, 4, dtype=torch.bool), 5, cap).shape == (3, 0)
    assert len(cap.probs) == n  # an empty mask draws nothing


def test_sample_points_v0_only_draws_when_subsampling() -> None:
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[0, 2, 2:5] = True
    replay = ReplaySampler([])
    assert sample_points_v0(mask, 5, replay).shape == (2, 3)  # no draw needed
    replay = ReplaySampler([{"fn": "torch.randperm", "out": torch.tensor([2, 0, 1])}])
    pts = sample_points_v0(mask, 2, replay)
    assert torch.allclose(pts[1] * 8, torch.tensor([4.0, 2.0]))  # randperm order kept


def test_point_sample_is_corner_aligned() -> None:
    feat = torch.arange(12.0).view(1, 1, 3, 4)
    pts = torch.tensor([[[0.0, 0.0], [1.0, 1.0], [1.0, 0.0]]])
    assert point_sample(feat, pts).flatten().tolist() == [0.0, 11.0, 3.0]


def test_torch_sampler_seeded_is_reproducible_and_replay_checks_order() -> None:
    a, b = TorchSampler(7), TorchSampler(7)
    p = torch.ones(50)
    assert torch.equal(a.multinomial(p, 10, False), b.multinomial(p, 10, False))
    assert torch.equal(a.randint(11, 6), b.randint(11, 6))
    replay = ReplaySampler([{"fn": "torch.randint", "out": torch.tensor([1, 2, 3])}])
    with pytest.raises(ReplayError):
        replay.multinomial(p, 3, False)
    with pytest.raises(ReplayError):
        replay.randint(2, 3)  # value 2 out of range
    with pytest.raises(ReplayError):
        ReplaySampler([]).randint(3, 1)
    recorded = {"fn": "torch.multinomial", "args": [torch.ones(14)], "kwargs": {"replacement": False},
                "out": torch.arange(3)}
    assert ReplaySampler([recorded]).multinomial(torch.ones(14), 3, False).tolist() == [0, 1, 2]
    with pytest.raises(ReplayError):  # drawn over another number of pixels than recorded
        ReplaySampler([recorded]).multinomial(torch.ones(13), 3, False)


# -- attention layout --------------------------------------------------------------------------
def test_v1_self_attention_keeps_objects_and_groups_apart(v1: SEEM) -> None:
    layout: AttentionLayout = v1.predictor.layout
    state = GroupState(layout, num_objects=2)
    c = 4
    state.groups["queries_object"] = Group(torch.zeros(5, 1, c), torch.zeros(5, 1, c))
    state.groups["queries_spatial"] = Group(torch.zeros(6, 1, c), torch.zeros(6, 1, c))
    state.groups["memories_spatial"] = Group(torch.zeros(6, 1, c), torch.zeros(6, 1, c))
    pad = torch.tensor([[False, False, False, True]])
    state.groups["tokens_spatial"] = Group(torch.zeros(4, 1, c), torch.zeros(4, 1, c), padding=pad)
    state.token_objects = torch.tensor([[[0], [1], [0], [-1]]])
    state.memories_on = True
    state.memory_objects = torch.tensor([0, 0, 0, 1, 1, 1])
    names = state.self_names()
    assert names == ["queries_object", "queries_spatial", "tokens_spatial", "memories_spatial"]
    _, _, index = state.concat(names)
    m = state.self_attn_mask(names, index, 1, torch.device("cpu"))[0]
    qo, qs, ts, ms = (slice(*index[n]) for n in names)
    assert not m[qo, qo].any() and m[qo, qs].all() and m[qs, qo].all()  # object <-> spatial blocked
    assert m[qs, qs].tolist()[0] == [False, False, False, True, True, True]  # own object's queries
    assert m[qs, ts][0].tolist() == [False, True, False, True]  # object 0 query: tokens of object 0
    assert m[qs, ts][3].tolist() == [True, False, True, True]
    assert m[qs, ms][0].tolist() == [False] * 3 + [True] * 3
    assert m[ms, ms][4].tolist() == [True] * 3 + [False] * 3
    assert m[ts, ts][1].tolist() == [True, False, True, True]


def test_cross_attention_mask_unblocks_fully_blocked_rows(v1: SEEM) -> None:
    state = GroupState(v1.predictor.layout)
    blocked = torch.zeros(1, 3, 6, dtype=torch.bool)
    blocked[:, 1] = True
    state.groups["queries_object"] = Group(torch.zeros(3, 1, 4), torch.zeros(3, 1, 4), attn_mask=blocked)
    mask = state.cross_attn_mask(["queries_object"])
    assert not mask[:, 1].any()


# -- decoder / SEEM API ------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["focalt_v1", "focalt_v0"])
def test_reduced_spatial_pass_equals_full_pass(name: str, v1: SEEM, v0: SEEM) -> None:
    model = v1 if name == "focalt_v1" else v0
    feats = fake_features(model)
    pos = blob_masks((64, 96), [(10, 10, 20, 30), (40, 50, 44, 60)])  # > MAX_SPATIAL_LEN: subsampled
    neg = blob_masks((64, 96), [(30, 70, 31, 71), (0, 0, 0, 0)])
    if name == "focalt_v0":
        pos, neg = pos[:1], neg[:1]
    full = model.decode_spatial(feats, pos, neg, sampler=TorchSampler(3), object_queries=True)
    reduced = model.decode_spatial(feats, pos, neg, sampler=TorchSampler(3), object_queries=False)
    assert "pred_masks" in full.raw and "pred_masks" not in reduced.raw
    assert torch.allclose(full.mask_logits, reduced.mask_logits, atol=1e-4)
    assert torch.equal(full.selected, reduced.selected)
    # round 2 with memories
    full2 = model.decode_spatial(feats, pos, neg, prev_mask=full.mask_logits, sampler=TorchSampler(4))
    red2 = model.decode_spatial(feats, pos, neg, prev_mask=full.mask_logits, sampler=TorchSampler(4),
                                object_queries=False)
    assert torch.allclose(full2.mask_logits, red2.mask_logits, atol=1e-4)
    assert not torch.allclose(full2.mask_logits, full.mask_logits)  # memories change the answer
    n = pos.shape[0]
    h4, w4 = 16, 24
    assert full.mask_logits.shape == (n, 1, h4, w4)
    assert full.class_logits.shape == (n, 5) and full.caption_embeddings.shape == (n, 64)
    k = 3 if name == "focalt_v1" else 9
    assert full.candidate_masks.shape == (n, k, h4, w4) and full.candidate_scores.shape == (n, k)
    rows = torch.arange(n)
    assert torch.equal(full.candidate_masks[rows, full.selected][:, None], full.mask_logits)


def test_seeded_sampler_gives_reproducible_answers(v1: SEEM) -> None:
    feats = fake_features(v1)
    pos = blob_masks((64, 96), [(5, 5, 40, 40)])
    neg = torch.zeros_like(pos)
    a = v1.decode_spatial(feats, pos, neg, sampler=TorchSampler(11), object_queries=False)
    b = v1.decode_spatial(feats, pos, neg, sampler=TorchSampler(11), object_queries=False)
    assert torch.equal(a.mask_logits, b.mask_logits)
    with pytest.raises(ValueError):
        v1.decode_spatial(feats, pos, neg, prev_mask=torch.zeros(2, 1, 16, 24))
    with pytest.raises(ValueError):  # unpadded masks would put the points in the wrong place
        v1.decode_spatial(feats, pos[:, :59, :89])


@pytest.mark.parametrize("name", ["focalt_v1", "focalt_v0"])
def test_grounding_reduced_pass_equals_full_pass(name: str, v1: SEEM, v0: SEEM) -> None:
    model = v1 if name == "focalt_v1" else v0
    feats = fake_features(model)
    full = model.decode_grounding(feats, ["a red box", "the dog on the left"], object_queries=True)
    reduced = model.decode_grounding(feats, ["a red box", "the dog on the left"], object_queries=False)
    assert full.mask_logits.shape == (2, 1, 16, 24) and full.scores.shape == (9, 2)
    assert torch.equal(full.matched, reduced.matched)
    assert torch.allclose(full.mask_logits, reduced.mask_logits, atol=1e-4)
    # Only the matched queries' masks: the same answer without the other queries' masks.
    picked = model.decode_grounding(feats, ["a red box", "the dog on the left"], all_masks=False)
    assert "pred_gmasks" not in picked.raw and picked.raw["pred_gmaskembs"].shape == (1, 9, 64)
    assert torch.equal(picked.matched, reduced.matched)
    assert torch.allclose(picked.mask_logits, reduced.mask_logits, atol=1e-5)
    every = model.query_masks(feats, picked.raw["pred_gmaskembs"])
    assert torch.allclose(every[0], reduced.raw["pred_gmasks"][0], atol=1e-5)


@pytest.mark.parametrize("name", ["focalt_v1", "focalt_v0"])
def test_referring_prompt_from_another_image(name: str, v1: SEEM, v0: SEEM) -> None:
    model = v1 if name == "focalt_v1" else v0
    ref_feats, target = fake_features(model, seed=1), fake_features(model, seed=2)
    region = blob_masks((64, 96), [(8, 8, 30, 30)])
    # On its own image, an encoded prompt is exactly the mask prompt (same draws, same order).
    direct = model.decode_spatial(ref_feats, region, torch.zeros_like(region), sampler=TorchSampler(5),
                                  object_queries=False)
    s = TorchSampler(5)
    prompt = model.encode_reference(ref_feats, region, sampler=s)
    via_prompt = model.decode_spatial(ref_feats, prompt=prompt, sampler=s, object_queries=False)
    assert torch.allclose(via_prompt.mask_logits, direct.mask_logits, atol=1e-5)
    # On another image: same plumbing, the target's own features give the mask.
    other = model.decode_spatial(target, prompt=prompt, sampler=TorchSampler(6), object_queries=False)
    assert other.mask_logits.shape == (1, 1, 16, 24)
    assert torch.equal(other.raw["pred_pspatials"][0], prompt.query_pos.transpose(0, 1)[0])
    assert not torch.allclose(other.mask_logits, direct.mask_logits)
    second = model.decode_spatial(target, prompt=prompt, prev_mask=other.mask_logits, sampler=TorchSampler(7))
    assert second.mask_logits.shape == (1, 1, 16, 24)


def test_v0_decodes_several_objects_as_a_batch(v0: SEEM) -> None:
    feats = fake_features(v0)
    pos = blob_masks((64, 96), [(10, 10, 11, 14), (40, 50, 41, 54)])  # 4 pixels: no subsampling draw
    both = v0.decode_spatial(feats, pos, sampler=ReplaySampler([]), object_queries=False)
    one = v0.decode_spatial(feats, pos[1:], sampler=ReplaySampler([]), object_queries=False)
    assert both.mask_logits.shape == (2, 1, 16, 24)
    assert torch.allclose(both.mask_logits[1], one.mask_logits[0], atol=1e-5)


def test_generic_path_and_image_resolution(v1: SEEM) -> None:
    image = torch.randint(0, 255, (3, 45, 70), dtype=torch.uint8)
    x, hw = v1.preprocess(image)
    assert x.shape == (1, 3, 64, 96) and hw == (45, 70)
    assert torch.all(x[..., 45:, :] == 0) and torch.all(x[..., :, 70:] == 0)
    feats = v1.encode_image(x, hw)
    raw = v1.decode_generic(feats)
    assert raw["pred_logits"].shape == (1, 9, 5) and raw["pred_masks"].shape == (1, 9, 16, 24)
    assert len(raw["aux_outputs"]) == 3
    out = v1.postprocess_generic(raw, feats)
    assert out["sem_seg"].shape == (4, 45, 70) and out["panoptic_seg"][0].shape == (45, 70)
    r = v1.decode_spatial(feats, v1.pad_masks(blob_masks((45, 70), [(3, 3, 9, 9)]), feats))
    assert v1.to_image(r.mask_logits, feats).shape == (1, 45, 70)


# -- post-processing ---------------------------------------------------------------------------
def test_resized_mask_equals_interpolate_then_threshold() -> None:
    g = torch.Generator().manual_seed(0)
    for i in range(200):
        h, w = (int(v) for v in torch.randint(2, 50, (2,), generator=g))
        size = tuple(int(v) for v in torch.randint(1, 160, (2,), generator=g))
        logits = torch.randn(h, w, generator=g) - 1.0
        if i % 3 == 0:  # one small object: only its box is computed
            logits = torch.full((h, w), -1.0)
            logits[h // 2, w // 3] = 2.0
        ref = F.interpolate(logits[None, None], size=size, mode="bilinear", align_corners=False)[0, 0] > 0
        assert np.array_equal(resized_mask(logits, size), ref.numpy())
    assert not resized_mask(torch.full((8, 8), -1.0), (40, 40)).any()


def test_panoptic_merges_stuff_and_skips_occluded_queries() -> None:
    big = 8.0
    masks = torch.full((4, 4, 4), -big)
    masks[0, :2, :2] = big  # thing, class 0
    masks[1, 2:, :] = big  # stuff class 1
    masks[2, :2, 2:] = big  # stuff class 1 again -> merged into the same segment
    masks[3, :2, :2] = big  # duplicates query 0 with a lower score -> loses the overlap test
    logits = torch.tensor([[9.0, 0, 0], [0, 9.0, 0], [0, 9.0, 0], [5.0, 0, 0]])
    ids, segs = panoptic_inference(logits, masks, num_classes=2, thing_ids={0}, object_mask_threshold=0.5,
                                   overlap_threshold=0.8)
    assert segs == [{"id": 1, "isthing": True, "category_id": 0}, {"id": 2, "isthing": False, "category_id": 1}]
    assert ids[0, 0] == 1 and ids[3, 3] == 2 and ids[0, 3] == 2
    inst = instance_inference(logits, masks, num_classes=2, topk=4, thing_ids={0})
    assert set(inst["pred_classes"].tolist()) == {0} and inst["pred_masks"].shape[1:] == (4, 4)


# -- manifests ---------------------------------------------------------------------------------
MANIFESTS = SHARED / "seem" / "manifests"


def meta_state(cfg: dict[str, Any]) -> dict[str, tuple[list[int], str]]:
    with torch.device("meta"):
        model = build_seem(cfg)
    return {k: (list(v.shape), str(v.dtype).replace("torch.", "")) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ["focalt_v1", "focalt_v0", "focall_v1", "samvitb_v1"])
def test_full_size_build_matches_official_manifest(name: str) -> None:
    path = MANIFESTS / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"manifest {path} not present")
    manifest = json.loads(path.read_text())["state_dict"]
    ours = meta_state(load_config(name))
    assert ours == {k: (list(v[0]), v[1]) for k, v in manifest.items()}


def test_demo_config_builds_official_keys_and_refuses_prompts() -> None:
    path = MANIFESTS / "focalt_demo.json"
    if not path.is_file():
        pytest.skip("demo manifest not present")
    cfg = load_config("focalt_v0")
    cfg_set(cfg, "MODEL.NAME", "seem_model_demo")
    cfg_set(cfg, "MODEL.DECODER.NAME", "seem_demo")
    manifest = json.loads(path.read_text())["state_dict"]
    assert meta_state(cfg) == {k: (list(v[0]), v[1]) for k, v in manifest.items()}
    for key, value in TINY_OVERRIDES.items():
        cfg_set(cfg, key, value)
    model = build_seem(cfg).eval()
    feats = fake_features(model)
    with pytest.raises(CheckpointError):
        model.decode_spatial(feats, blob_masks((64, 96), [(1, 1, 5, 5)]))


def test_cached_cross_attention_keys_values_give_the_same_answer(v1: SEEM) -> None:
    plain, cached = fake_features(v1), fake_features(v1)
    v1.predictor.cache_kv(cached.decoder_inputs)
    assert cached.nbytes() > plain.nbytes()
    pos = blob_masks((64, 96), [(10, 10, 20, 30)])
    a = v1.decode_spatial(plain, pos, sampler=TorchSampler(2))
    b = v1.decode_spatial(cached, pos, sampler=TorchSampler(2))
    assert torch.allclose(a.mask_logits, b.mask_logits, atol=1e-5)
    assert torch.allclose(a.raw["pred_logits"], b.raw["pred_logits"], atol=1e-5)


def test_fused_attention_path_matches_explicit_path() -> None:
    torch.manual_seed(1)
    attn = MultiHeadAttention(16, 4)
    q, k = torch.randn(5, 2, 16), torch.randn(9, 2, 16)
    mask = torch.rand(8, 5, 9) > 0.5
    mask[:, :, 3] = False
    assert torch.allclose(attn(q, k, k, attn_mask=mask, no_empty_rows=True), attn(q, k, k, attn_mask=mask),
                          atol=1e-5)
    shared = mask.view(2, 4, 5, 9)[:, 0]  # one (B, L, S) mask for all heads
    per_head = shared.repeat_interleave(4, dim=0)
    for fused in (False, True):
        assert torch.allclose(attn(q, k, k, attn_mask=shared, no_empty_rows=fused),
                              attn(q, k, k, attn_mask=per_head, no_empty_rows=fused), atol=1e-6)


def test_autocast_runs_every_path_and_returns_float32() -> None:
    model = tiny_seem("focalt_v1")
    x, hw = model.preprocess(torch.randint(0, 255, (3, 60, 90), dtype=torch.uint8))
    ref_feats = model.encode_image(x, hw)
    pos = model.pad_masks(blob_masks(hw, [(10, 10, 30, 40)]), ref_feats)
    ref = model.decode_spatial(ref_feats, pos, sampler=TorchSampler(0))
    model.autocast_dtype = torch.bfloat16  # the CPU stand-in for CUDA fp16/bf16
    feats = model.encode_image(x, hw)
    assert feats.mask_features.dtype == torch.bfloat16
    r = model.decode_spatial(feats, pos, prev_mask=ref.mask_logits, sampler=TorchSampler(0), object_queries=False)
    g = model.decode_grounding(feats, ["a cat"])
    out = model.postprocess_generic(model.decode_generic(feats), feats)
    assert r.mask_logits.dtype == g.mask_logits.dtype == out["sem_seg"].dtype == torch.float32
    assert torch.isfinite(r.mask_logits).all() and torch.isfinite(g.scores).all()


def test_mask_logits_on_channels_last_maps_equal_the_dot_product() -> None:
    torch.manual_seed(3)
    emb, maps = torch.randn(2, 5, 16), torch.randn(2, 16, 6, 7)
    ref = torch.einsum("bqc,bchw->bqhw", emb, maps)
    for m in (maps, maps.contiguous(memory_format=torch.channels_last)):
        out = mask_logits(emb, m)
        assert out.shape == (2, 5, 6, 7) and torch.allclose(out, ref, atol=1e-5)


def test_cross_attention_leaves_out_keys_no_query_sees(monkeypatch) -> None:
    from seem_annotator.model import layers

    torch.manual_seed(5)
    layer = CrossAttentionLayer(16, 4).eval()
    tgt, query_pos = torch.randn(3, 1, 16), torch.randn(3, 1, 16)
    memory, pos = torch.randn(40, 1, 16), torch.randn(40, 1, 16)
    mask = torch.ones(1, 3, 40, dtype=torch.bool)
    mask[0, 0, 5:9] = mask[0, 1, 7:12] = mask[0, 2, 30:32] = False  # 9 of 40 keys are seen
    heads = layer.multihead_attn.project_kv(memory + pos, memory, heads_first=True)
    plain = layer.multihead_attn.project_kv(memory + pos, memory)
    pruned = [layer(tgt, memory, mask, pos, query_pos), layer(tgt, None, mask, query_pos=query_pos, kv=heads),
              layer(tgt, None, mask, query_pos=query_pos, kv=plain)]
    monkeypatch.setattr(layers, "PRUNE_SHARE", 0.0)  # every key read, blocked ones masked
    assert layers._seen_keys(mask) is None
    whole = layer(tgt, memory, mask, pos, query_pos)
    for out in pruned:
        assert torch.allclose(out, whole, atol=1e-6)
    monkeypatch.setattr(layers, "PRUNE_SHARE", 0.5)
    assert layers._seen_keys(mask).tolist() == [5, 6, 7, 8, 9, 10, 11, 30, 31]


def test_heads_first_cached_keys_values_match_plain_projection() -> None:
    torch.manual_seed(4)
    attn = MultiHeadAttention(16, 4)
    q, mem = torch.randn(3, 2, 16), torch.randn(11, 2, 16)
    plain, heads = attn.project_kv(mem, mem), attn.project_kv(mem, mem, heads_first=True)
    assert heads[0].shape == (2, 4, 11, 4) and heads[0].is_contiguous()
    mask = torch.rand(2, 3, 11) > 0.5
    mask[:, :, 0] = False
    assert torch.allclose(attn(q, None, None, attn_mask=mask, kv=plain, no_empty_rows=True),
                          attn(q, None, None, attn_mask=mask, kv=heads, no_empty_rows=True), atol=1e-6)
