"""The fixture tests hold for any fixture folder in the shared format, also one that records less.

A v0 model records no second interactive object and no memory draws. We derive such a folder from
the shared Focal-T v1 fixture (dropping exactly those entries), point the fixture test modules at
it with `$SEEM_ANNOTATOR_FIXTURES` in a pytest subprocess, and require that every test passes or
skips with a reason naming the missing entry: no error, no failure. The recording sampler records
every kind of draw (randperm too) in the replayable format.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT, SHARED

from seem_annotator.model.sampler import RecordingSampler, ReplaySampler

SOURCE = SHARED / "seem" / "fixtures" / "tiny_focalt_v1"
MODULES = ["tests/test_fixture_decoder.py", "tests/test_fixture_text.py", "tests/test_fixture_vision.py"]
DROPPED_OUTPUTS = ("interactive_multi_r1", "interactive_multi_r2")
DROPPED_INPUTS = ("click_pos2", "click_pos2_yx")


def v0_like_fixture(dest: Path) -> Path:
    """`dest` with the source fixture minus what a v0 model would not record."""
    dest.mkdir()
    for name in ("config.yaml", "state_dict.pt"):
        (dest / name).symlink_to(SOURCE / name)
    inputs = torch.load(SOURCE / "inputs.pt", weights_only=False)
    outputs = torch.load(SOURCE / "outputs.pt", weights_only=False)
    for key in DROPPED_INPUTS:
        inputs.pop(key)
    for key in DROPPED_OUTPUTS:
        outputs.pop(key)
    for entry in ("interactive_r1", "interactive_r2"):
        calls = outputs[entry]["rng_calls"]
        outputs[entry]["rng_calls"] = [c for c in calls if c.get("caller") != "cross_attn_mask"]
    torch.save(inputs, dest / "inputs.pt")
    torch.save(outputs, dest / "outputs.pt")
    return dest


@pytest.mark.slow
def test_fixture_tests_on_a_v0_like_folder(tmp_path: Path) -> None:
    if not SOURCE.is_dir():
        pytest.skip(f"shared fixture not found at {SOURCE}")
    folder = v0_like_fixture(tmp_path / "tiny_v0_like")
    report = tmp_path / "report.xml"
    env = {**os.environ, "SEEM_ANNOTATOR_FIXTURES": str(folder), "SEEM_ANNOTATOR_TEST_DEVICE": "cpu",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                           *MODULES], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    cases = ET.parse(report).getroot().iter("testcase")
    passed, skipped, bad = [], [], []
    for case in cases:
        name = case.get("name", "")
        assert "tiny_v0_like" in name, f"{name} did not run on the derived folder"
        outcome = [child for child in case if child.tag in ("failure", "error", "skipped")]
        if not outcome:
            passed.append(name)
        elif outcome[0].tag == "skipped":
            skipped.append((name, outcome[0].get("message", "")))
        else:
            bad.append(name)
    assert not bad and proc.returncode == 0, proc.stdout[-4000:]
    # Every skip names the entry that is missing, and only the dropped entries are missing.
    dropped = (*DROPPED_OUTPUTS, *DROPPED_INPUTS, "interactive_r2")
    for name, reason in skipped:
        assert "not recorded" in reason or "no memory draws" in reason, (name, reason)
        assert any(f"'{key}'" in reason for key in dropped), (name, reason)
    assert any("multi" in n for n, _ in skipped) and any("memory draws" in r for _, r in skipped)
    # What the folder does record is still checked: generic, grounding, text, vision, round 1, and
    # round 2 wherever its memory draws are not needed (global seed: recorded prefix).
    for test, part in (("test_fixture_generic", ""), ("test_fixture_grounding", ""), ("test_fixture_text_outputs", ""),
                       ("test_vision_matches_fixture", ""), ("test_fixture_interactive_replay", "interactive_r1"),
                       ("test_fixture_interactive_global_seed", "interactive_r2")):
        assert any(n.startswith(f"{test}[") and part in n for n in passed), f"{test} {part} did not pass: {passed}"


def test_recording_sampler_records_every_kind_and_replays() -> None:
    rec = RecordingSampler(seed=3)
    draws = [rec.multinomial(torch.full((7,), 1 / 7), 4, False), rec.randint(11, 5), rec.randperm(9)]
    assert [c["fn"] for c in rec.calls] == ["torch.multinomial", "torch.randint", "torch.randperm"]
    assert sorted(draws[2].tolist()) == list(range(9))
    replay = ReplaySampler(rec.calls)
    again = [replay.multinomial(torch.full((7,), 1 / 7), 4, False), replay.randint(11, 5), replay.randperm(9)]
    assert replay.exhausted and all(torch.equal(a, b) for a, b in zip(draws, again))
    # Same seed, same draws: the recorder does not disturb the generator.
    plain = RecordingSampler(seed=3)
    assert torch.equal(plain.multinomial(torch.full((7,), 1 / 7), 4, False), draws[0])


def test_fixture_folders_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import conftest

    def fixture(folder: Path) -> Path:
        folder.mkdir(parents=True)
        for name in conftest.FIXTURE_FILES:
            (folder / name).write_bytes(b"")
        return folder

    single = fixture(tmp_path / "one" / "tiny_a")  # named directly
    nested = fixture(tmp_path / "many" / "tiny_a")  # inside a folder of fixtures, same name
    other = fixture(tmp_path / "many" / "tiny_b")
    (tmp_path / "many" / "incomplete").mkdir()
    monkeypatch.setenv("SEEM_ANNOTATOR_FIXTURES", os.pathsep.join([str(single), str(tmp_path / "many"),
                                                                   str(tmp_path / "missing")]))
    dirs = conftest.seem_fixture_dirs()
    assert dirs == [single, nested, other]
    assert conftest._fixture_ids(dirs) == ["one/tiny_a", "many/tiny_a", "tiny_b"]
    monkeypatch.delenv("SEEM_ANNOTATOR_FIXTURES")
    assert conftest.fixture_roots() == [SHARED / "seem" / "fixtures"]
    monkeypatch.setenv("SEEM_ANNOTATOR_TEST_DEVICE", "tpu")
    with pytest.raises(pytest.UsageError, match="cpu or cuda"):
        conftest.fixture_device_name()
