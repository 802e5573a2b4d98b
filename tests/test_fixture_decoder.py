"""Replay every recorded SEEM call of each fixture folder and compare with our model (float32, CPU).

Each fixture (see its README) holds a shrunken random-weight SEEM built by the official code:
config.yaml, state_dict.pt, inputs.pt and outputs.pt with the generic (segment everything),
interactive (rounds 1/2, one and two objects, with every random draw recorded) and grounding
calls. We build from config.yaml, load the weights strictly, run our own image encoder once per
fixture, and require every recorded output within 1e-4 (max abs error). Interactive rounds
replay the recorded draws through ReplaySampler, and also run with torch's global generator
after the recorded seed (same draws, proving the draw order is the reference's).

Any fixture folder in this format works (`$SEEM_ANNOTATOR_FIXTURES`, device
`$SEEM_ANNOTATOR_TEST_DEVICE`, see conftest): an entry the fixture does not record (a v0 model
has no second interactive object and no memory draws) skips with a reason naming it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import recorded

from seem_annotator.model.config import load_config
from seem_annotator.model.postprocess import sem_seg_postprocess, upsample_masks
from seem_annotator.model.sampler import RecordingSampler, ReplaySampler
from seem_annotator.model.seem import SEEM, ImageFeatures, build_seem

TOL = 1e-4
INTERACTIVE = ("interactive_r1", "interactive_r2", "interactive_multi_r1", "interactive_multi_r2")
pytestmark = pytest.mark.slow  # one image encode per fixture (a 1024x1024 ViT for the SAM fixture)


def assert_close(name: str, ours: torch.Tensor, ref: torch.Tensor) -> None:
    assert tuple(ours.shape) == tuple(ref.shape), f"{name}: shape {tuple(ours.shape)} != {tuple(ref.shape)}"
    err = (ours.detach().float().cpu() - ref.float()).abs().max().item() if ref.numel() else 0.0
    assert err <= TOL, f"{name}: max abs error {err:.3g} > {TOL}"


class Fixture:
    """A fixture folder loaded once: the model, its inputs/outputs and our image features."""

    def __init__(self, folder: Path, device: torch.device) -> None:
        torch.set_grad_enabled(False)
        self.folder = folder
        self.model: SEEM = build_seem(load_config(folder / "config.yaml")).eval()
        self.state_dict = torch.load(folder / "state_dict.pt", weights_only=True, map_location="cpu")
        self.model.load_state_dict(self.state_dict, strict=True)
        self.model.to(device)
        self.inputs: dict[str, Any] = torch.load(folder / "inputs.pt", weights_only=False, map_location="cpu")
        self.outputs: dict[str, Any] = torch.load(folder / "outputs.pt", weights_only=False, map_location="cpu")
        names = (self.outputs.get("text") or {}).get("class_names") or self.inputs["class_names"]
        self.class_emb = self.model.language.get_text_embeddings(list(names), prompt=False)
        self.model.thing_ids = set(self.inputs.get("thing_dataset_id_to_contiguous_id", {}).values())
        x, hw = self.model.preprocess(self.inputs["image"])
        self.features: ImageFeatures = self.model.encode_image(x, hw)

    def prompt_masks(self, entry: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded (n_obj, Hp, Wp) pos/neg masks of an interactive call, built from inputs.pt as
        the fixture READMEs describe (round 2 adds the stroke; multi adds a second object)."""
        i = self.inputs
        pos = i["click_pos"] | recorded(i, "stroke", self.where) if entry.endswith("r2") else i["click_pos"]
        if "multi" in entry:
            pos_m = torch.stack([pos, recorded(i, "click_pos2", f"{self.where} inputs")])
            neg_m = torch.stack([i["click_neg"], torch.zeros_like(i["click_neg"])])
        else:
            pos_m, neg_m = pos[None], i["click_neg"][None]
        dev = self.model.device
        return self.model.pad_masks(pos_m.to(dev), self.features), self.model.pad_masks(neg_m.to(dev), self.features)

    @property
    def where(self) -> str:
        return f"fixture {self.folder.name}"

    def entry(self, name: str) -> dict[str, Any]:
        """A recorded output, or a skip naming it."""
        return recorded(self.outputs, name, self.where)

    def round_calls(self, entry: str, ref: dict[str, Any]) -> list[dict[str, Any]]:
        """The round's recorded draws; a skip when the model draws memory objects (v1 with a
        previous mask) that the fixture did not record."""
        calls = list(recorded(ref, "rng_calls", f"{self.where} {entry}"))
        if self.needs_memory_draws(ref) and not memory_draws(calls) and any("caller" in c for c in calls):
            pytest.skip(f"{self.where}: entry {entry!r} has no memory draws (cross_attn_mask) recorded")
        return calls

    def needs_memory_draws(self, ref: dict[str, Any]) -> bool:
        return self.model.predictor.version == "v1" and ref.get("prev_mask_in") is not None

    def prev_mask(self, ref: dict[str, Any]) -> torch.Tensor | None:
        """The recorded previous mask (1, n_obj, h4, w4) as our (n_obj, 1, h4, w4), on the device."""
        prev = recorded(ref, "prev_mask_in", self.where)
        return None if prev is None else prev.transpose(0, 1).to(self.model.device)


def memory_draws(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in calls if c.get("caller") == "cross_attn_mask"]


@functools.cache
def load_fixture(folder: str, device: str) -> Fixture:
    return Fixture(Path(folder), torch.device(device))


@pytest.fixture
def fx(seem_fixture_dir: Path, fixture_device: torch.device) -> Fixture:
    return load_fixture(str(seem_fixture_dir), str(fixture_device))


def test_fixture_strict_load_keys(fx: Fixture) -> None:
    ours = fx.model.state_dict()
    assert set(ours) == set(fx.state_dict), "state-dict key sets differ"
    for key, value in fx.state_dict.items():
        assert tuple(ours[key].shape) == tuple(value.shape), key
    assert "dilation_kernel" in ours and "criterion.empty_weight" in ours
    assert "pixel_mean" not in ours and "pixel_std" not in ours
    assert_close("class_emb", fx.class_emb, recorded(fx.entry("text"), "class_emb", fx.where))


def test_fixture_generic(fx: Fixture) -> None:
    ref = fx.entry("generic")
    raw = fx.model.decode_generic(fx.features)
    head = recorded(ref, "sem_seg_head", f"{fx.where} generic")
    assert_close("pred_logits", raw["pred_logits"], head["pred_logits"])
    assert_close("pred_masks", raw["pred_masks"], head["pred_masks"])
    assert len(raw["aux_outputs"]) == len(head["aux_outputs"])
    for i, aux in enumerate(head["aux_outputs"]):
        for key, value in aux.items():
            assert_close(f"aux{i}.{key}", raw["aux_outputs"][i][key], value)
    out = fx.model.postprocess_generic(raw, fx.features)
    proc = recorded(ref, "processed", f"{fx.where} generic")
    assert_close("sem_seg", out["sem_seg"], proc["sem_seg"])
    ids, segments = out["panoptic_seg"]
    assert torch.equal(ids.cpu(), proc["panoptic_seg"][0])
    assert segments == proc["panoptic_seg"][1]
    inst = out["instances"]
    assert tuple(inst["image_size"]) == tuple(proc["instances"]["image_size"])
    for key in ("pred_masks", "pred_boxes", "scores"):
        assert_close(f"instances.{key}", inst[key], proc["instances"][key])
    assert torch.equal(inst["pred_classes"].cpu(), proc["instances"]["pred_classes"])


def check_spatial(fx: Fixture, entry: str, result: Any, ref: dict[str, Any], full: bool) -> None:
    pre = ref["pre_selection"]
    raw = result.raw
    for key, value in pre.items():
        if key == "aux_outputs":
            continue
        if key in ("pred_logits", "pred_masks", "pred_captions") and not full:
            assert key not in raw  # the reduced pass has no object queries
            continue
        assert_close(f"{entry}.{key}", raw[key], value)
    for i, aux in enumerate(pre["aux_outputs"]):
        for key, value in aux.items():
            if key in raw["aux_outputs"][i]:
                assert_close(f"{entry}.aux{i}.{key}", raw["aux_outputs"][i][key], value)
            else:
                assert not full and key in ("pred_logits", "pred_captions")
    # SpatialResult.mask_logits is (n_obj, 1, h4, w4); the reference prev_mask is (1, n_obj, h4, w4).
    assert_close(f"{entry}.prev_mask", result.mask_logits.transpose(0, 1), ref["prev_mask"])


@pytest.mark.parametrize("entry", INTERACTIVE)
@pytest.mark.parametrize("object_queries", [True, False], ids=["full", "reduced"])
def test_fixture_interactive_replay(fx: Fixture, entry: str, object_queries: bool) -> None:
    ref = fx.entry(entry)
    pos, neg = fx.prompt_masks(entry)
    if "spatial_query_pos_mask" in ref:  # stored in some fixtures: our reconstruction must match
        assert torch.equal(pos.cpu(), ref["spatial_query_pos_mask"][0])
        assert torch.equal(neg.cpu(), ref["spatial_query_neg_mask"][0])
    sampler = ReplaySampler(fx.round_calls(entry, ref))
    result = fx.model.decode_spatial(fx.features, pos, neg, prev_mask=fx.prev_mask(ref),
                                     sampler=sampler, object_queries=object_queries, aux=True)
    assert sampler.exhausted, "fewer random draws than the reference"
    check_spatial(fx, entry, result, ref, full=object_queries)


@pytest.mark.parametrize("entry", ["interactive_r2", "interactive_multi_r2"])
def test_fixture_memories_computed_ahead(fx: Fixture, entry: str) -> None:
    """Round 2 with its memories computed before the round (as the app does after each answer)
    matches the reference; the stream's draws are the round's own memory draws."""
    ref = fx.entry(entry)
    pos, neg = fx.prompt_masks(entry)
    prev = fx.prev_mask(ref)
    assert prev is not None, f"{entry} has no previous mask"
    calls = fx.round_calls(entry, ref)
    draws = memory_draws(calls)
    # v1 draws each layer's memory-to-object assignment; v0 draws nothing for its memories.
    assert len(draws) == (fx.model.predictor.num_layers if fx.needs_memory_draws(ref) else 0)
    stream = fx.model.memory_stream(fx.features, prev, ReplaySampler(draws))
    sampler = ReplaySampler(calls)
    result = fx.model.decode_spatial(fx.features, pos, neg, prev_mask=prev, sampler=sampler, object_queries=False,
                                     aux=True, memories=stream)
    assert sampler.exhausted and result.raw["memories_from_stream"] is True
    check_spatial(fx, entry, result, ref, full=False)


@pytest.mark.parametrize("entry", INTERACTIVE)
def test_fixture_interactive_global_seed(fx: Fixture, entry: str) -> None:
    """With the recorded seed on torch's global generator our draws (every kind: multinomial,
    randint, randperm) are the reference's, and replaying what we recorded gives the same mask."""
    ref = fx.entry(entry)
    pos, neg = fx.prompt_masks(entry)
    calls = list(recorded(ref, "rng_calls", f"{fx.where} {entry}"))
    sampler = RecordingSampler()
    torch.manual_seed(int(recorded(ref, "seed", f"{fx.where} {entry}")))
    result = fx.model.decode_spatial(fx.features, pos, neg, prev_mask=fx.prev_mask(ref), sampler=sampler,
                                     object_queries=False)
    ours = [(c["fn"], c["out"].tolist()) for c in sampler.calls]
    theirs = [(c["fn"], c["out"].tolist()) for c in calls]
    if fx.needs_memory_draws(ref) and not memory_draws(calls):
        # A fixture without memory draws: ours end with one per layer (the decoder draws them last).
        assert len(ours) == len(theirs) + fx.model.predictor.num_layers
        ours = ours[: len(theirs)]
    assert ours == theirs
    assert_close(f"{entry}.prev_mask", result.mask_logits.transpose(0, 1), ref["prev_mask"])
    again = fx.model.decode_spatial(fx.features, pos, neg, prev_mask=fx.prev_mask(ref),
                                    sampler=ReplaySampler(sampler.calls), object_queries=False)
    assert torch.equal(again.mask_logits, result.mask_logits)


@pytest.mark.parametrize("r1, r2", [("interactive_r1", "interactive_r2"),
                                    ("interactive_multi_r1", "interactive_multi_r2")], ids=["single", "multi"])
def test_fixture_interactive_chained_rounds(fx: Fixture, r1: str, r2: str) -> None:
    """Round 2 fed with our own round-1 answer (not the recorded one) matches too."""
    ref1, ref2 = fx.entry(r1), fx.entry(r2)
    pos, neg = fx.prompt_masks(r1)
    first = fx.model.decode_spatial(fx.features, pos, neg, sampler=ReplaySampler(fx.round_calls(r1, ref1)),
                                    object_queries=False)
    pos, neg = fx.prompt_masks(r2)
    second = fx.model.decode_spatial(fx.features, pos, neg, prev_mask=first.mask_logits,
                                     sampler=ReplaySampler(fx.round_calls(r2, ref2)), object_queries=False)
    assert_close(f"{r2}.prev_mask", second.mask_logits.transpose(0, 1), ref2["prev_mask"])


@pytest.mark.parametrize("object_queries", [True, False], ids=["full", "reduced"])
def test_fixture_grounding(fx: Fixture, object_queries: bool) -> None:
    h, w = fx.features.image_hw
    for k, ref in enumerate(fx.entry("grounding")):
        texts = list(ref["texts"])
        emb = fx.model.language.get_text_token_embeddings(texts, norm=False)
        rec = ref["grounding_token_embeddings"]
        assert torch.equal(emb["tokens"]["input_ids"].cpu(), rec["tokens"]["input_ids"])
        assert_close(f"grounding{k}.token_emb", emb["token_emb"], rec["token_emb"])
        assert_close(f"grounding{k}.class_emb", emb["class_emb"], rec["class_emb"])
        result = fx.model.decode_grounding(fx.features, token_embeddings=emb, object_queries=object_queries)
        head = ref["sem_seg_head"]
        assert_close(f"grounding{k}.pred_gmasks", result.raw["pred_gmasks"], head["pred_gmasks"])
        assert_close(f"grounding{k}.pred_gtexts", result.raw["pred_gtexts"], head["pred_gtexts"])
        if object_queries:
            assert_close(f"grounding{k}.pred_logits", result.raw["pred_logits"], head["pred_logits"])
        assert_close(f"grounding{k}.out_prob", result.scores, ref["out_prob"])
        assert result.matched.cpu().tolist() == torch.as_tensor(ref["matched_id"]).flatten().tolist()
        up = upsample_masks(result.mask_logits.transpose(0, 1), fx.features.padded_hw)[0]
        assert_close(f"grounding{k}.grounding_mask", sem_seg_postprocess(up, (h, w), h, w), ref["grounding_mask"])
