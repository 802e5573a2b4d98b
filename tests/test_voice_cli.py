"""`seem-annotator voice parse|transcribe|devices` through the real CLI dispatcher."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from voice_support import REPO_ROOT, save_tiny_whisper

from seem_annotator.cli.main import main
from seem_annotator.voice.audio import write_wav


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("text, labels, expected", [
    ("Segment the red car.", "", {"action": "prompt", "text": "red car"}),
    ("Label it as dog.", "dog,cat", {"action": "label", "label": "dog"}),
    ("Dogs", "dog,cat", {"action": "label", "label": "dog"}),
    ("Dogs", "", {"action": "prompt", "text": "dogs"}),
    ("acept", "", {"action": "accept"}),
    ("Next image, please.", "", {"action": "next"}),
    ("Previous.", "", {"action": "previous"}),
    ("Segment everything", "", {"action": "everything"}),
    ("Add", "", {"action": "add"}),
    ("remove", "", {"action": "remove"}),
    ("Zoom in.", "", {"action": "zoom_in"}),
    ("zoom out", "", {"action": "zoom_out"}),
    ("Undo.", "", {"action": "undo"}),
    ("Redo.", "", {"action": "redo"}),
    ("Delete this.", "", {"action": "delete"}),
    ("Cancel", "", {"action": "cancel"}),
    ("Label it as traffic light", " traffic light , person ", {"action": "label", "label": "traffic light"}),
])
def test_voice_parse_prints_json(capsys, text: str, labels: str, expected: dict) -> None:
    argv = ["voice", "parse", text] + (["--labels", labels] if labels else [])
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert json.loads(out) == expected


def test_voice_parse_empty_is_a_one_line_error(capsys) -> None:
    code, out, err = run_cli(capsys, "voice", "parse", "  um ")
    assert code == 2 and out == ""
    assert err.startswith("seem-annotator: error:") and err.count("\n") == 1


def test_voice_parse_as_a_real_process() -> None:
    proc = subprocess.run([sys.executable, "-m", "seem_annotator", "voice", "parse", "label this as Cat",
                           "--labels", "cat,dog"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"action": "label", "label": "cat"}


@pytest.mark.slow
def test_voice_transcribe_with_a_checkpoint_file(capsys, tmp_path: Path) -> None:
    ckpt = save_tiny_whisper(tmp_path / "tiny-random.pt")
    wav = tmp_path / "take.wav"
    rng = np.random.default_rng(0)
    write_wav(wav, (rng.standard_normal(44100) * 0.1).astype(np.float32), rate=44100)  # resampled to 16 kHz
    code, out, err = run_cli(capsys, "voice", "transcribe", str(wav), "--model", str(ckpt), "--device", "cpu",
                             "--parse")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2  # the transcript (noise from random weights), then its parse as JSON
    assert "action" in json.loads(lines[1])
    assert "1.0 s of audio" in err and "on cpu" in err


def test_voice_transcribe_errors_are_one_line(capsys, tmp_path: Path, monkeypatch) -> None:
    code, _, err = run_cli(capsys, "voice", "transcribe", str(tmp_path / "missing.wav"))
    assert code == 2 and "not found" in err and err.count("\n") == 1
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEfmt nonsense")
    code, _, err = run_cli(capsys, "voice", "transcribe", str(bad))
    assert code == 2 and "not a PCM WAV" in err
    # Official weights missing and no network: the message says which file goes where.
    from seem_annotator.voice import transcribe

    monkeypatch.setattr(transcribe, "_can_reach", lambda url: "Network is unreachable")
    wav = tmp_path / "ok.wav"
    write_wav(wav, np.zeros(16000, np.float32))
    code, _, err = run_cli(capsys, "voice", "transcribe", str(wav), "--model", "small",
                           "--download-root", str(tmp_path / "cache"))
    assert code == 2 and err.count("\n") == 1
    assert str(tmp_path / "cache" / "small.pt") in err and "Network is unreachable" in err
