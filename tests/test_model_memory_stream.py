"""The spatial memories computed ahead (`memory_stream`) give the same round as computed inline."""

from __future__ import annotations

import pytest
import torch
from test_model_decoder import blob_masks, fake_features, tiny_seem

from seem_annotator.model import layers
from seem_annotator.model.sampler import TorchSampler
from seem_annotator.model.seem import SEEM

torch.set_grad_enabled(False)


@pytest.fixture(scope="module")
def models() -> dict[str, SEEM]:
    return {"v1": tiny_seem("focalt_v1"), "v0": tiny_seem("focalt_v0")}


def _round_two(model: SEEM, prev: torch.Tensor, **kwargs: object):
    feats = fake_features(model)
    pos = blob_masks((64, 96), [(30, 40, 40, 60)])
    neg = blob_masks((64, 96), [(5, 5, 7, 7)])
    return model.decode_spatial(feats, pos, neg, prev_mask=prev, sampler=TorchSampler(4), object_queries=False,
                                **kwargs)


@pytest.mark.parametrize("version", ["v1", "v0"])
@pytest.mark.parametrize("region", ["large", "small"])
def test_stream_gives_the_same_round_as_inline_memories(models: dict[str, SEEM], version: str, region: str) -> None:
    model = models[version]
    feats = fake_features(model)
    # "small": the previous mask covers a few pixels, so the stream gathers only those keys.
    prev = torch.full((1, 1, 16, 24), -5.0)
    if region == "small":
        prev[..., 3:6, 4:9] = 5.0
    else:
        prev[..., 2:14, 1:20] = 5.0
    stream = model.memory_stream(feats, prev)
    inline = _round_two(model, prev)
    ahead = _round_two(model, prev, memories=stream)
    assert inline.raw["memories_from_stream"] is False and ahead.raw["memories_from_stream"] is True
    assert torch.allclose(inline.mask_logits, ahead.mask_logits, atol=1e-5)
    assert torch.allclose(inline.candidate_scores, ahead.candidate_scores, atol=1e-5)
    assert torch.equal(inline.selected, ahead.selected)
    # the memories matter: without them the answer differs
    without = model.decode_spatial(feats, blob_masks((64, 96), [(30, 40, 40, 60)]),
                                   blob_masks((64, 96), [(5, 5, 7, 7)]), sampler=TorchSampler(4),
                                   object_queries=False)
    assert not torch.allclose(without.mask_logits, ahead.mask_logits)


def test_small_region_is_gathered_and_large_one_is_not(models: dict[str, SEEM], monkeypatch) -> None:
    model = models["v1"]
    feats = fake_features(model)
    pruned: list[bool] = []
    real = layers._seen_keys

    def spy(mask):
        keep = real(mask)
        pruned.append(keep is not None)
        return keep

    monkeypatch.setattr(layers, "_seen_keys", spy)
    small = torch.full((1, 1, 16, 24), -5.0)
    small[..., 3:6, 4:9] = 5.0
    model.memory_stream(feats, small)
    assert pruned and all(pruned)
    pruned.clear()
    model.memory_stream(feats, torch.full((1, 1, 16, 24), 5.0))
    assert pruned and not any(pruned)


def test_a_stream_for_another_mask_or_other_draws_is_not_used(models: dict[str, SEEM]) -> None:
    model = models["v1"]
    feats = fake_features(model)
    prev = torch.full((1, 1, 16, 24), -5.0)
    prev[..., 2:10, 3:12] = 5.0
    other = prev.clone()
    other[..., 12:14, 20:22] = 5.0
    stale = model.memory_stream(feats, other)
    r = _round_two(model, prev, memories=stale)
    assert r.raw["memories_from_stream"] is False
    assert torch.allclose(r.mask_logits, _round_two(model, prev).mask_logits, atol=1e-6)
    # Two objects: each layer's memories are assigned to objects at random; a stream drawn with
    # other draws does not fit this round.
    pos = blob_masks((64, 96), [(30, 40, 40, 60), (5, 60, 20, 80)])
    neg = torch.zeros_like(pos)
    prev2 = torch.cat([prev, -prev])
    a = model.decode_spatial(feats, pos, neg, prev_mask=prev2, sampler=TorchSampler(9), object_queries=False,
                             memories=model.memory_stream(feats, prev2, TorchSampler(123)))
    assert a.raw["memories_from_stream"] is False


def test_several_objects_with_the_rounds_own_draws(models: dict[str, SEEM]) -> None:
    """A stream drawn exactly as the round draws (same sampler state) is used and exact."""
    model = models["v1"]
    feats = fake_features(model)
    pos = blob_masks((64, 96), [(30, 40, 40, 60), (5, 60, 20, 80)])
    neg = torch.zeros_like(pos)
    prev = torch.full((2, 1, 16, 24), -5.0)
    prev[0, :, 2:10, 3:12] = 5.0
    prev[1, :, 8:15, 14:22] = 5.0
    inline = model.decode_spatial(feats, pos, neg, prev_mask=prev, sampler=TorchSampler(9), object_queries=False)
    # Replay the round's memory draws: the same seeded sampler, advanced past the prompt draws.
    recorder = _Recorder(TorchSampler(9))
    model.decode_spatial(feats, pos, neg, prev_mask=prev, sampler=recorder, object_queries=False)
    layers = model.predictor.num_layers
    memory_draws = recorder.draws[-layers:]
    assert all(len(d) == model.predictor.layout.num_memories for d in memory_draws)
    stream = model.memory_stream(feats, prev, _Replay(memory_draws))
    ahead = model.decode_spatial(feats, pos, neg, prev_mask=prev, sampler=TorchSampler(9), object_queries=False,
                                 memories=stream)
    assert ahead.raw["memories_from_stream"] is True
    assert torch.allclose(inline.mask_logits, ahead.mask_logits, atol=1e-5)


class _Recorder:
    def __init__(self, inner: TorchSampler) -> None:
        self.inner, self.draws = inner, []

    def multinomial(self, probs, num_samples, replacement):
        self.draws.append(self.inner.multinomial(probs, num_samples, replacement))
        return self.draws[-1]

    def randint(self, high, size):
        self.draws.append(self.inner.randint(high, size))
        return self.draws[-1]

    def randperm(self, n):
        self.draws.append(self.inner.randperm(n))
        return self.draws[-1]


class _Replay:
    def __init__(self, draws: list[torch.Tensor]) -> None:
        self.draws = list(draws)

    def multinomial(self, probs, num_samples, replacement):
        out = self.draws.pop(0)
        assert len(out) == num_samples
        return out
