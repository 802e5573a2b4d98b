"""Strict checkpoint loading, config files and manifests.

Uses the fixtures' real state dicts (official key space) and deliberately broken copies of them:
truncated, not a torch file, unsafe pickle, wrapped, missing buffers, missing/extra/mis-shaped keys.
Full-size official configs are built on the meta device and compared with the shared manifests.
"""

from __future__ import annotations

import json
import pickle
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from seem_annotator.errors import CheckpointError, UserError
from seem_annotator.model.checkpoint import (
    check_state_dict,
    fitting_configs,
    load_checkpoint,
    load_seem,
    read_state_dict,
)
from seem_annotator.model.config import cfg_get, cfg_set, config_name, known_models, load_config
from seem_annotator.model.manifest import full_manifest, known_signature, model_manifest
from seem_annotator.model.seem import build_seem

SHARED_SEEM = Path(__file__).resolve().parents[2] / "shared" / "seem"
FOCALT_FIXTURE = SHARED_SEEM / "fixtures" / "tiny_focalt_v1"
SAM_FIXTURE = SHARED_SEEM / "fixtures" / "tiny_samvitb_v1_small"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="module")
def focalt_state() -> dict[str, torch.Tensor]:
    return torch.load(_need(FOCALT_FIXTURE) / "state_dict.pt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def focalt_cfg() -> dict:
    return load_config(_need(FOCALT_FIXTURE) / "config.yaml")


def _model(cfg: dict) -> torch.nn.Module:
    torch.manual_seed(1)
    return build_seem(cfg).eval()


# ---------------------------------------------------------------- configs


def test_bundled_configs_load_and_name_themselves() -> None:
    models = known_models()
    assert list(models) == ["focalt_v1", "focall_v1", "focalt_v0", "focall_v0", "samvitb_v1", "samvitl_v1"]
    for name, info in models.items():
        cfg = load_config(name)
        assert cfg_get(cfg, "MODEL.BACKBONE.LOAD_PRETRAINED") is False
        assert cfg_get(cfg, "MODEL.BACKBONE.PRETRAINED") == ""
        assert config_name(cfg) == name
        assert info.checkpoint == f"seem_{name}.pt"
        assert load_config(info.config_path.stem) == cfg == load_config(info.checkpoint)
    assert cfg_get(load_config("samvitl_v1"), "MODEL.BACKBONE.VIT.SIZE") == "large"
    assert cfg_get(load_config("focall_v0"), "MODEL.DECODER.NAME") == "seem_v0"


def test_config_lookup_and_errors(tmp_path: Path, focalt_cfg: dict) -> None:
    assert cfg_get(focalt_cfg, "MODEL.DECODER.HIDDEN_DIM") == 64
    assert cfg_get(focalt_cfg, "MODEL.DECODER.NOPE", 7) == 7
    with pytest.raises(CheckpointError, match="MODEL.DECODER.NOPE"):
        cfg_get(focalt_cfg, "MODEL.DECODER.NOPE")
    cfg_set(focalt_cfg, "MODEL.BACKBONE.VIT.EMBED_DIM", 8)  # extension keys pass through
    assert focalt_cfg["MODEL"]["BACKBONE"]["VIT"]["EMBED_DIM"] == 8
    sam = load_config(_need(SAM_FIXTURE) / "config.yaml")
    assert cfg_get(sam, "MODEL.BACKBONE.VIT.FPN_OUT_DIMS") == [16, 32, 48, 64]

    with pytest.raises(CheckpointError, match="not found"):
        load_config("focalx_v9")
    bad = tmp_path / "bad.yaml"
    bad.write_text("MODEL: [unclosed\n")
    with pytest.raises(CheckpointError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(CheckpointError, match="mapping"):
        load_config(bad)
    partial = tmp_path / "partial.yaml"
    cfg = load_config("focalt_v1")
    del cfg["MODEL"]["DECODER"]["HIDDEN_DIM"]
    del cfg["MODEL"]["BACKBONE"]["FOCAL"]["DEPTHS"]
    partial.write_text(json.dumps(cfg))  # JSON is YAML
    with pytest.raises(CheckpointError, match=r"MODEL\.DECODER\.HIDDEN_DIM.*MODEL\.BACKBONE\.FOCAL\.DEPTHS"):
        load_config(partial)


# ---------------------------------------------------------------- manifests


@pytest.mark.slow
@pytest.mark.parametrize("name", ["focalt_v1", "focalt_v0", "focall_v1", "samvitb_v1"])
def test_full_size_configs_match_shared_manifests(name: str) -> None:
    ref = json.loads(_need(SHARED_SEEM / "manifests" / f"{name}.json").read_text())
    ours = model_manifest(load_config(name))
    assert ours == ref["state_dict"]
    assert list(ours) == list(ref["state_dict"])


def test_full_manifest_summary_matches_shared() -> None:
    ref = json.loads(_need(SHARED_SEEM / "manifests" / "focalt_v1.json").read_text())
    ours = full_manifest(load_config("focalt_v1"))
    for key in ("num_state_dict_keys", "total_parameters", "total_state_dict_numel", "parameters_by_submodule",
                "persistent_buffers"):
        assert ours[key] == ref[key], key
    assert {"pixel_mean", "pixel_std"} <= set(ours["nonpersistent_buffers"])


def test_fixture_manifests_match(seem_fixture_dir: Path) -> None:
    cfg = load_config(seem_fixture_dir / "config.yaml")
    state = torch.load(seem_fixture_dir / "state_dict.pt", map_location="cpu", weights_only=True)
    manifest = model_manifest(cfg)
    if (seem_fixture_dir / "manifest.json").is_file():
        ref = json.loads((seem_fixture_dir / "manifest.json").read_text())
        assert manifest == ref.get("state_dict", ref)
    assert manifest == {k: [list(v.shape), str(v.dtype).removeprefix("torch.")] for k, v in state.items()}


def test_released_v0_v1_share_a_signature_and_families_differ() -> None:
    assert known_signature("focalt_v0") == known_signature("focalt_v1")
    assert known_signature("focall_v0") == known_signature("focall_v1")
    assert known_signature("samvitb_v1") != known_signature("samvitl_v1")
    assert known_signature("focalt_v1") != known_signature("focall_v1")


# ---------------------------------------------------------------- loading


def test_fixture_state_dict_loads_strictly(seem_fixture_dir: Path) -> None:
    state = torch.load(seem_fixture_dir / "state_dict.pt", map_location="cpu", weights_only=True)
    model = _model(load_config(seem_fixture_dir / "config.yaml"))
    report = load_checkpoint(model, seem_fixture_dir / "state_dict.pt")
    assert report.notes == [] and report.num_tensors == len(state)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_load_seem_by_paths(focalt_state: dict) -> None:
    model, report = load_seem(FOCALT_FIXTURE / "config.yaml", FOCALT_FIXTURE / "state_dict.pt")
    assert not model.training and report.num_tensors == 287
    assert torch.equal(model.state_dict()["sem_seg_head.predictor.query_feat.weight"],
                       focalt_state["sem_seg_head.predictor.query_feat.weight"])


def test_missing_constant_buffers_are_filled_and_reported(tmp_path: Path, focalt_cfg: dict,
                                                          focalt_state: dict) -> None:
    state = {k: v for k, v in focalt_state.items() if k not in ("dilation_kernel", "criterion.empty_weight")}
    path = tmp_path / "no_buffers.pt"
    torch.save(state, path)
    model = _model(focalt_cfg)
    with torch.no_grad():
        model.dilation_kernel.zero_()  # must come back as ones from the constant, not stay as is
    report = load_checkpoint(model, path)
    assert any("dilation_kernel" in n for n in report.notes)
    assert any("criterion.empty_weight" in n for n in report.notes)
    assert torch.equal(model.dilation_kernel, torch.ones(1, 1, 3, 3))
    torch.testing.assert_close(model.criterion.empty_weight, torch.tensor([1.0, 1.0, 0.1]))


def test_meta_model_gets_constant_buffers(tmp_path: Path, focalt_cfg: dict, focalt_state: dict) -> None:
    state = {k: v for k, v in focalt_state.items() if k not in ("dilation_kernel", "criterion.empty_weight")}
    path = tmp_path / "no_buffers.pt"
    torch.save(state, path)
    with torch.device("meta"):
        model = build_seem(focalt_cfg)
    load_checkpoint(model, path)
    assert torch.equal(model.dilation_kernel, torch.ones(1, 1, 3, 3))
    torch.testing.assert_close(model.criterion.empty_weight, torch.tensor([1.0, 1.0, 0.1]))
    assert not any(t.is_meta for t in model.state_dict().values())


def test_wrappers_are_tolerated_and_explained(tmp_path: Path, focalt_cfg: dict, focalt_state: dict) -> None:
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"model": OrderedDict(("module." + k, v) for k, v in focalt_state.items()), "epoch": 3}, wrapped)
    report = load_checkpoint(_model(focalt_cfg), wrapped)
    assert any("'model'" in n for n in report.notes) and any("module." in n for n in report.notes)


def test_half_precision_file_is_converted_and_reported(tmp_path: Path, focalt_cfg: dict,
                                                       focalt_state: dict) -> None:
    path = tmp_path / "half.pt"
    torch.save({k: v.half() for k, v in focalt_state.items()}, path)
    model = _model(focalt_cfg)
    report = load_checkpoint(model, path)
    assert report.notes == ["the file stores float16 tensors; converted to the model's dtype"]
    key = "sem_seg_head.predictor.query_feat.weight"
    assert model.state_dict()[key].dtype == torch.float32
    torch.testing.assert_close(model.state_dict()[key], focalt_state[key].half().float())


def test_key_and_shape_mismatches_are_listed(tmp_path: Path, focalt_cfg: dict, focalt_state: dict) -> None:
    state = dict(focalt_state)
    del state["sem_seg_head.predictor.query_feat.weight"]
    state["sem_seg_head.predictor.bbox_embed.weight"] = torch.zeros(4, 64)
    state["sem_seg_head.predictor.level_embed.weight"] = torch.zeros(4, 64)
    path = tmp_path / "broken.pt"
    torch.save(state, path)
    model = _model(focalt_cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(model, path, config_label="config tiny")
    msg = str(err.value)
    assert "does not match config tiny" in msg
    assert "1 missing key(s) [sem_seg_head.predictor.query_feat.weight]" in msg
    assert "1 unexpected key(s) [sem_seg_head.predictor.bbox_embed.weight]" in msg
    assert "sem_seg_head.predictor.level_embed.weight: file [4, 64] vs model [3, 64]" in msg
    assert "no known config fits it (a custom model needs its own config" in msg
    # never a partial load
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_wrong_config_names_the_one_that_fits(focalt_state: dict) -> None:
    sam = load_config(_need(SAM_FIXTURE) / "config.yaml")
    with pytest.raises(CheckpointError, match="missing key.*unexpected key"):
        check_state_dict(_model(sam), focalt_state, source="Checkpoint x.pt")


def _full_size_state(name: str) -> dict[str, torch.Tensor]:
    """A state dict with the exact keys/shapes of a released model but no real storage (stride 0)."""
    one = torch.zeros(1)
    return {k: one.expand(shape) if shape else one[0] for k, (shape, _) in model_manifest(load_config(name)).items()}


def test_signature_identifies_released_models(tmp_path: Path) -> None:
    state = _full_size_state("focall_v1")
    exact, closest = fitting_configs(state)
    assert exact == ["focall_v1", "focall_v0"] and closest is None
    path = tmp_path / "mystery.pt"
    torch.save(state, path)
    assert path.stat().st_size < 2_000_000
    with torch.device("meta"):
        model = build_seem(load_config("focalt_v1"))
    with pytest.raises(CheckpointError, match="fits config focall_v1 / focall_v0: use --config focall_v1"):
        load_checkpoint(model, path, config_label="config focalt_v1")
    # A damaged copy fits nothing exactly; the message names the model it is closest to.
    del state["sem_seg_head.predictor.query_feat.weight"]
    state["sem_seg_head.predictor.class_embed"] = torch.zeros(1).expand(512, 256)
    exact, closest = fitting_configs(state)
    assert exact == []
    assert closest == "focall_v1: 930 of its 931 keys present, 929 with the same shape"


# ---------------------------------------------------------------- unreadable files


def test_unreadable_files_give_clear_errors(tmp_path: Path, focalt_cfg: dict) -> None:
    model = torch.nn.Linear(2, 2)
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "nope.pt")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(model, empty)
    text = tmp_path / "notes.pt"
    text.write_text("these are not weights\n" * 10)
    with pytest.raises(CheckpointError, match="not a PyTorch|cannot be read|truncated"):
        load_checkpoint(model, text)
    full = tmp_path / "full.pt"
    torch.save(model.state_dict(), full)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(model, truncated)
    assert issubclass(CheckpointError, UserError)


class _Payload:
    def __reduce__(self):  # what a malicious checkpoint would do on a plain torch.load
        return (print, ("payload ran",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_unsafe_pickles_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2), "extra": _Payload()}, path)
    with pytest.raises(CheckpointError, match="Python objects besides tensors"):
        read_state_dict(path)
    legacy = tmp_path / "legacy.pkl"
    legacy.write_bytes(pickle.dumps(_Payload()))
    with pytest.raises(CheckpointError):
        read_state_dict(legacy)
    assert "payload ran" not in capsys.readouterr().out


def test_non_state_dict_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointError, match="state dict"):
        read_state_dict(path)
    path = tmp_path / "meta.pt"
    torch.save({"epoch": 3, "config": {"lr": 0.1}}, path)
    with pytest.raises(CheckpointError, match="not a SEEM state dict"):
        read_state_dict(path)


def test_a_file_of_zeros_says_what_to_do_before_what_torch_said(tmp_path: Path) -> None:
    # Found in the app: a download that landed as zeros; the status bar cut the line before its advice.
    path = tmp_path / "seem_focalt_v1.pt"
    path.write_bytes(b"\0" * 100_000)
    with pytest.raises(CheckpointError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert message.index("delete it and download it again") < message.index("(torch:")
