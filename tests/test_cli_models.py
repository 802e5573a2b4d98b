"""`seem-annotator models list/download/check/manifest` and the checkpoint cache. No network: the
hub call is replaced or offline mode is on, and the messages users would read are asserted."""

from __future__ import annotations

import argparse
import json
import socket
from pathlib import Path

import pytest
import torch

from seem_annotator.cli import models_commands
from seem_annotator.errors import CheckpointError, UserError
from seem_annotator.model import hub
from seem_annotator.model.config import load_config
from seem_annotator.model.manifest import model_manifest

SHARED_SEEM = Path(__file__).resolve().parents[2] / "shared" / "seem"
FOCALT_FIXTURE = SHARED_SEEM / "fixtures" / "tiny_focalt_v1"


def run_cli(argv: list[str]) -> int:
    """Parse with the `models` group alone and report UserErrors like the main dispatcher does."""
    parser = argparse.ArgumentParser(prog="seem-annotator")
    models_commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"seem-annotator: error: {exc}", file=__import__("sys").stderr)
        return 2


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("SEEM_ANNOTATOR_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_network(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket, "create_connection", no_network)
    return cache


def _fixture() -> Path:
    if not FOCALT_FIXTURE.is_dir():
        pytest.skip("tiny_focalt_v1 fixture not present")
    return FOCALT_FIXTURE


def _full_size_file(name: str, path: Path) -> Path:
    """A file with a released model's exact keys/shapes but no real data (stride-0 tensors)."""
    one = torch.zeros(1)
    torch.save({k: one.expand(s) if s else one[0] for k, (s, _) in model_manifest(load_config(name)).items()}, path)
    return path


def test_list_shows_cache_state(isolated_cache: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_cli(["models", "list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:7]}
    assert set(rows) == {"focalt_v1", "focall_v1", "focalt_v0", "focall_v0", "samvitb_v1", "samvitl_v1"}
    assert all(" no " in row for row in rows.values())
    assert str(isolated_cache / "checkpoints") in out
    (isolated_cache / "checkpoints" / "seem_focall_v1.pt").write_bytes(b"x" * 10)
    run_cli(["models", "list"])
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:7]}
    assert " yes " in rows["focall_v1"] and " no " in rows["focalt_v1"]


def test_resolve_checkpoint(isolated_cache: Path, tmp_path: Path) -> None:
    expected = isolated_cache / "checkpoints" / "seem_focalt_v1.pt"
    with pytest.raises(CheckpointError) as err:
        hub.resolve_checkpoint("focalt_v1")
    assert "models download focalt_v1" in str(err.value) and str(expected) in str(err.value)
    expected.write_bytes(b"weights")
    assert hub.resolve_checkpoint("focalt_v1") == expected
    assert hub.resolve_checkpoint("seem_focalt_v1.pt") == expected
    own = tmp_path / "mine.pt"
    own.write_bytes(b"w")
    assert hub.resolve_checkpoint(own) == own
    with pytest.raises(CheckpointError, match="Unknown SEEM model 'focalz'"):
        hub.resolve_checkpoint("focalz")
    with pytest.raises(CheckpointError, match="not found"):
        hub.resolve_checkpoint(tmp_path / "absent.pt")


def test_download_offline_says_where_to_put_the_file(isolated_cache: Path, capsys: pytest.CaptureFixture) -> None:
    assert run_cli(["models", "download", "focalt_v1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "offline" in err
    assert "https://huggingface.co/xdecoder/SEEM/resolve/main/seem_focalt_v1.pt" in err
    assert str(isolated_cache / "checkpoints" / "seem_focalt_v1.pt") in err


def test_download_without_network(monkeypatch: pytest.MonkeyPatch, isolated_cache: Path) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(CheckpointError, match="no network connection to huggingface.co.*seem_samvitb_v1.pt"):
        hub.download("samvitb_v1")
    with pytest.raises(CheckpointError, match="Unknown SEEM model"):
        hub.download("resnet50")


def test_download_moves_the_file_into_the_cache(monkeypatch: pytest.MonkeyPatch, isolated_cache: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hub, "_check_reachable", lambda info: None)
    calls = []

    def fake_download(repo_id: str, filename: str, *, local_dir: Path, force_download: bool = False) -> str:
        calls.append((repo_id, filename))
        Path(local_dir).mkdir(parents=True, exist_ok=True)
        out = Path(local_dir) / filename
        out.write_bytes(b"checkpoint bytes")
        return str(out)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    assert run_cli(["models", "download", "focalt_v0", "--quiet"]) == 0
    target = isolated_cache / "checkpoints" / "seem_focalt_v0.pt"
    assert target.read_bytes() == b"checkpoint bytes"
    assert calls == [("xdecoder/SEEM", "seem_focalt_v0.pt")]
    assert str(target) in capsys.readouterr().out
    assert hub.download("focalt_v0") == target and len(calls) == 1  # cached: no second download


def test_check_fixture_checkpoint_with_its_config(seem_fixture_dir: Path, capsys: pytest.CaptureFixture) -> None:
    # Every fixture folder (the id names it): its state dict checks clean against its own config.
    count = len(torch.load(seem_fixture_dir / "state_dict.pt", map_location="cpu", weights_only=True))
    code = run_cli(["models", "check", str(seem_fixture_dir / "state_dict.pt"),
                    "--config", str(seem_fixture_dir / "config.yaml")])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("OK: ") and f"{count} tensors" in out


def test_check_custom_model_without_config(capsys: pytest.CaptureFixture) -> None:
    fixture = _fixture()
    assert run_cli(["models", "check", str(fixture / "state_dict.pt")]) == 2
    err = capsys.readouterr().err
    assert "fits no known config" in err and "--config" in err


def test_check_finds_the_config_by_signature(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _full_size_file("focalt_v0", tmp_path / "mystery.pt")
    assert run_cli(["models", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "matches config focalt_v1" in out and "focalt_v1 / focalt_v0" in out


def test_check_mislabelled_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # Named like the Focal-T release but holding Focal-L weights.
    path = _full_size_file("focall_v1", tmp_path / "seem_focalt_v1.pt")
    assert run_cli(["models", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "does not match config focalt_v1" in err and "missing key(s)" in err
    assert "with another shape" in err and "fits config focall_v1 / focall_v0" in err


def test_check_truncated_and_foreign_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fixture = _fixture()
    data = (fixture / "state_dict.pt").read_bytes()
    truncated = tmp_path / "cut.pt"
    truncated.write_bytes(data[: len(data) // 3])
    assert run_cli(["models", "check", str(truncated), "--config", str(fixture / "config.yaml")]) == 2
    assert "truncated" in capsys.readouterr().err
    photo = tmp_path / "photo.pt"
    photo.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 100)
    assert run_cli(["models", "check", str(photo), "--config", "focalt_v1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seem-annotator: error: Checkpoint") and len(err.strip().splitlines()) == 1
    # Random bytes are corruption, not "Python objects besides tensors".
    noise = tmp_path / "noise.pt"
    noise.write_bytes(bytes(range(256)) * 12)
    assert run_cli(["models", "check", str(noise)]) == 2
    err = capsys.readouterr().err
    assert "not a PyTorch checkpoint or is corrupt" in err and "besides tensors" not in err


def test_manifest_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "m" / "focalt_v1.json"
    assert run_cli(["models", "manifest", "focalt_v1", "--json", str(out)]) == 0
    assert "729 keys" in capsys.readouterr().out
    data = json.loads(out.read_text())
    shared = SHARED_SEEM / "manifests" / "focalt_v1.json"
    if shared.is_file():
        assert data["state_dict"] == json.loads(shared.read_text())["state_dict"]
    assert data["num_state_dict_keys"] == 729
    assert run_cli(["models", "manifest", "nonexistent_cfg", "--json", str(out)]) == 2
    assert "not found" in capsys.readouterr().err


def test_bench_model_small_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from seem_annotator.bench import model as bench_model

    fixture = _fixture()
    parser = argparse.ArgumentParser()
    bench_model.register(parser.add_subparsers())
    out = tmp_path / "bench.json"
    args = parser.parse_args(["model", "--config", str(fixture / "config.yaml"), "--size", "96", "--repeats", "2",
                              "--warmup", "1", "--threads", "1", "--json", str(out)])
    assert args.func(args) == 0
    table = capsys.readouterr().out
    assert "image_encode" in table and "decoder_round_full" in table and "1.13" in table
    result = json.loads(out.read_text())
    assert result["padded_size"] == [96, 96] and result["threads"] == 1
    for stage in ("image_encode", "decoder_round_full", "decoder_round", "decoder_round_memory",
                  "decoder_generic", "text_encode"):
        r = result["stages"][stage]
        assert len(r["runs_s"]) == 2 and 0 < r["min_s"] <= r["median_s"] <= r["p95_s"] and r["cpu_median_s"] > 0


def test_bench_model_rejects_missing_gpu() -> None:
    from seem_annotator.bench.model import pick_device
    from seem_annotator.errors import DeviceError

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(DeviceError, match="no CUDA device"):
        pick_device("cuda")
    with pytest.raises(DeviceError, match="Unknown device"):
        pick_device("tpu9")


def test_a_watched_download_reports_its_bytes_and_stops_when_told(monkeypatch: pytest.MonkeyPatch,
                                                                    isolated_cache: Path) -> None:
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hub, "_check_reachable", lambda info: None)
    written: list[int] = []

    def fake_download(repo_id: str, filename: str, *, local_dir: Path, force_download: bool = False,
                      tqdm_class=None) -> str:
        with tqdm_class(total=1000, initial=0, unit="B", disable=True, name="huggingface_hub.http_get") as bar:
            for _ in range(10):
                written.append(100)
                bar.update(100)
        out = Path(local_dir) / filename
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(b"checkpoint bytes")
        return str(out)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    seen: list[tuple[int, int | None]] = []
    with pytest.raises(hub.DownloadCancelled, match="cancelled.*starts from the beginning"):
        hub.download("focalt_v1", progress=False, watch=lambda done, total: seen.append((done, total)) or done < 300)
    assert seen == [(100, 1000), (200, 1000), (300, 1000)] and sum(written) == 300
    assert not (isolated_cache / "checkpoints" / "seem_focalt_v1.pt").exists()
    path = hub.download("focalt_v1", progress=False, watch=lambda done, total: True)  # let through: it lands
    assert path.read_bytes() == b"checkpoint bytes"
