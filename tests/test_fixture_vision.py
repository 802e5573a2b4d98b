"""Numerical equivalence of the vision side (backbone + pixel decoder) with the official SEEM code.

For every fixture folder (see tests/conftest.py): build the backbone and pixel decoder from the
fixture's config.yaml, load the `backbone.` and `sem_seg_head.pixel_decoder.` parts of
state_dict.pt strictly, rebuild the normalised padded image the official model saw, and compare
with the recorded `backbone` and `pixel_decoder` outputs (float32 on `$SEEM_ANNOTATOR_TEST_DEVICE`,
TF32 off, max abs error <= 1e-4). A fixture that records neither skips, naming the entry.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from conftest import recorded

from seem_annotator.model.backbone import build_backbone
from seem_annotator.model.pixel_decoder import build_pixel_decoder

pytestmark = pytest.mark.fixture

TOL = 1e-4
FEATURES = ("res2", "res3", "res4", "res5")


def _subdict(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Exact key set and shapes, then a strict load; the message lists what differs."""
    mine = module.state_dict()
    missing = sorted(set(mine) - set(state))
    unexpected = sorted(set(state) - set(mine))
    mismatched = sorted(k for k in set(mine) & set(state) if tuple(mine[k].shape) != tuple(state[k].shape))
    assert not (missing or unexpected or mismatched), (
        f"{what}: missing {missing[:5]} unexpected {unexpected[:5]} shape-mismatched {mismatched[:5]}"
    )
    module.load_state_dict(state, strict=True)


def normalized_padded_image(image: torch.Tensor, mean: list[float], std: list[float], divisor: int) -> torch.Tensor:
    """uint8 (3, h, w) -> (1, 3, H, W) float32: (image - mean) / std, zero-padded bottom/right to a multiple
    of `divisor` (padding after normalisation, as detectron2's ImageList does)."""
    h, w = image.shape[-2:]
    hp, wp = -(-h // divisor) * divisor, -(-w // divisor) * divisor
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    x = torch.zeros(1, 3, hp, wp, dtype=torch.float32)
    x[0, :, :h, :w] = (image.float() - m) / s
    return x


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert tuple(a.shape) == tuple(b.shape), f"shape {tuple(a.shape)} != expected {tuple(b.shape)}"
    return (a.detach().float().cpu() - b.float().cpu()).abs().max().item()


def test_vision_matches_fixture(seem_fixture_dir: Path, fixture_device: torch.device) -> None:
    device = fixture_device  # conftest switches TF32 off on CUDA
    cfg = yaml.safe_load((seem_fixture_dir / "config.yaml").read_text())
    state = torch.load(seem_fixture_dir / "state_dict.pt", map_location="cpu", weights_only=True)
    # outputs.pt / inputs.pt hold Python containers (tuples, dicts): a trusted test asset.
    outputs = torch.load(seem_fixture_dir / "outputs.pt", map_location="cpu", weights_only=False)
    inputs = torch.load(seem_fixture_dir / "inputs.pt", map_location="cpu", weights_only=False)

    backbone = build_backbone(cfg).eval()
    pixel_decoder = build_pixel_decoder(cfg, backbone).eval()
    _load_strict(backbone, _subdict(state, "backbone."), "backbone")
    _load_strict(pixel_decoder, _subdict(state, "sem_seg_head.pixel_decoder."), "pixel_decoder")
    backbone.to(device)
    pixel_decoder.to(device)

    where = f"fixture {seem_fixture_dir.name}"
    recorded_backbone = recorded(outputs, "backbone", where)
    expected = recorded(outputs, "pixel_decoder", where)
    meta = outputs.get("meta", {})
    divisor = int(meta.get("size_divisibility", cfg["MODEL"]["DECODER"]["SIZE_DIVISIBILITY"]))
    mean = meta.get("pixel_mean", cfg["INPUT"]["PIXEL_MEAN"])
    std = meta.get("pixel_std", cfg["INPUT"]["PIXEL_STD"])
    x = normalized_padded_image(inputs["image"], mean, std, divisor)
    if "normalized_padded_image" in outputs:
        assert _max_err(x, outputs["normalized_padded_image"]) == 0.0

    with torch.no_grad():
        feats = backbone(x.to(device))
        mask_features, encoder_features, multi_scale = pixel_decoder.forward_features(feats)

    errors: dict[str, float] = {}
    for name in FEATURES:
        errors[f"backbone.{name}"] = _max_err(feats[name], recorded_backbone[name])
    errors["mask_features"] = _max_err(mask_features, expected["mask_features"])
    assert len(multi_scale) == len(expected["multi_scale_features"]) == 3
    for i, (got, want) in enumerate(zip(multi_scale, expected["multi_scale_features"], strict=True)):
        errors[f"multi_scale_features[{i}]"] = _max_err(got, want)
    if expected.get("transformer_encoder_features") is not None:
        errors["transformer_encoder_features"] = _max_err(encoder_features, expected["transformer_encoder_features"])
    bad = {k: v for k, v in errors.items() if not v <= TOL}
    assert not bad, f"{seem_fixture_dir.name}: max abs error above {TOL}: {bad}"
