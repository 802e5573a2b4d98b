"""packaging/device_check.{sh,py}: argument handling and the JSON writer (not the whole run)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "packaging" / "device_check.sh"


@pytest.fixture(scope="module")
def dc():
    spec = importlib.util.spec_from_file_location("device_check", REPO_ROOT / "packaging" / "device_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["device_check"] = module  # as the script registers itself for device_steps
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("device_check", None)


def _fixture(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in ("config.yaml", "state_dict.pt", "inputs.pt", "outputs.pt"):
        (folder / name).write_bytes(b"")
    return folder


def test_parse_args_defaults_and_fixture_folders(dc, tmp_path: Path) -> None:
    one = _fixture(tmp_path / "a" / "tiny_x")
    _fixture(tmp_path / "b" / "tiny_x")  # same name in a later root: the first copy wins
    two = _fixture(tmp_path / "b" / "tiny_y")
    (tmp_path / "b" / "not_a_fixture").mkdir()
    opts = dc.parse_args(["--out", str(tmp_path / "o"), "--fixtures", f"{tmp_path / 'a'}:{tmp_path / 'b'}"])
    assert opts.device == "cuda" and opts.steps == dc.STEPS and opts.budget == 420 and not opts.quick
    assert opts.fixtures == [one.resolve(), two.resolve()]
    opts = dc.parse_args(["--device", "cpu", "--out", str(tmp_path), "--fixtures", str(one), "--steps",
                          "whisper, environment", "--budget", "30", "--quick"])
    assert (opts.device, opts.steps, opts.budget, opts.quick) == ("cpu", ("whisper", "environment"), 30, True)
    assert opts.fixtures == [one.resolve()]


@pytest.mark.parametrize("argv", [["--device", "tpu"], ["--steps", "environment,warp"], ["--steps", ","],
                                  ["--budget", "0"], ["--budget", "soon"]])
def test_parse_args_rejects(dc, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        dc.parse_args(argv)
    assert exc.value.code == 2 and "device_check: error" in capsys.readouterr().err


def test_json_has_every_step_and_one_failure_does_not_stop_the_rest(dc, tmp_path: Path) -> None:
    opts = dc.parse_args(["--device", "cpu", "--out", str(tmp_path / "out"), "--fixtures", str(tmp_path),
                          "--steps", "environment,fixture_tests,autocast,bench_latency,whisper"])
    seen = []

    def ok(o):
        seen.append("ok")
        return {"click_ms": {"p50": 1.5, "p95": 2.0}}

    def boom(o):
        seen.append("boom")
        raise ValueError("kernel missing")

    def skip(o):
        seen.append("skip")
        raise dc.Skip("CUDA-only")

    def reported(o):
        seen.append("reported")
        return {"failures": ["IoU 0.5 < 0.98"], "iou": 0.5}

    def after_budget(o):
        o.budget = 0  # the next step finds the budget spent
        return {}

    steps = {"environment": ok, "fixture_tests": boom, "autocast": reported, "bench_latency": after_budget,
             "whisper": skip}
    data = dc.run_all(opts, steps)
    on_disk = json.loads((tmp_path / "out" / "device_check.json").read_text())
    assert on_disk == json.loads(json.dumps(data, default=str))
    assert seen == ["ok", "boom", "reported"]  # whisper never ran: budget spent
    by = {s["name"]: s for s in on_disk["steps"]}
    assert list(by) == ["environment", "fixture_tests", "autocast", "bench_latency", "whisper"]
    assert by["environment"]["status"] == "pass" and by["environment"]["figures"]["click_ms"]["p50"] == 1.5
    assert by["fixture_tests"]["status"] == "fail" and "ValueError: kernel missing" in by["fixture_tests"]["reason"]
    assert "Traceback" in by["fixture_tests"]["traceback"]
    assert by["autocast"]["status"] == "fail" and by["autocast"]["reason"] == "IoU 0.5 < 0.98"
    assert by["autocast"]["figures"]["iou"] == 0.5
    assert by["whisper"]["status"] == "skip" and "time budget" in by["whisper"]["reason"]
    assert on_disk["summary"] == {"pass": 2, "fail": 2, "skip": 1}
    assert on_disk["device"] == "cpu" and all("seconds" in s for s in on_disk["steps"])


def test_shell_script_arguments(tmp_path: Path) -> None:
    def sh(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30)

    assert sh("--help").returncode == 0 and "--device cuda|cpu" in sh("--help").stdout
    bad = sh("--device", "tpu", "--out", str(tmp_path))
    assert bad.returncode == 2 and "--device must be cuda or cpu" in bad.stderr
    assert sh("--frobnicate").returncode == 2
    assert sh("--out").returncode == 2
    missing = sh("--device", "cpu", "--python", "/no/such/python", "--out", str(tmp_path))
    assert missing.returncode == 3 and "no Python" in missing.stderr
    assert not list(tmp_path.iterdir())  # nothing written before the arguments are known good
