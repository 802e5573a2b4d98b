"""Helpers for the voice tests: spoken WAVs, an ALSA file-backed microphone, a tiny Whisper,
and a recording double of the window's command API."""

from __future__ import annotations

import ctypes.util
import dataclasses
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def portaudio_missing_reason() -> str | None:
    if ctypes.util.find_library("portaudio") is None:
        return "libportaudio2 is not installed (apt install libportaudio2)"
    return None


def speech_tools_missing_reason() -> str | None:
    for tool, package in (("espeak-ng", "espeak-ng"), ("sox", "sox")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt install {package})"
    return None


def require_audio_stack() -> None:
    """Skip the calling test unless PortAudio, espeak-ng and sox are all present."""
    reason = portaudio_missing_reason() or speech_tools_missing_reason()
    if reason:
        pytest.skip(reason)


def speak(text: str, folder: Path, name: str = "speech") -> tuple[Path, np.ndarray]:
    """espeak-ng says `text`; sox converts it to 16 kHz mono S16_LE. Returns (raw file path, the
    samples as float32 in [-1, 1])."""
    wav = folder / f"{name}.wav"
    raw = folder / f"{name}.raw"
    subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True, timeout=60)
    subprocess.run(["sox", str(wav), "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer",
                    "-t", "raw", str(raw)], check=True, capture_output=True, timeout=60)
    samples = np.fromfile(raw, dtype="<i2").astype(np.float32) / 32768.0
    return raw, samples


def alsa_file_home(folder: Path, raw_input: Path) -> Path:
    """A HOME whose `.asoundrc` makes ALSA's default device a capture device reading `raw_input`.

    The `file` plugin reads its `infile` as the captured stream (raw S16_LE mono here, since we
    open 16 kHz int16 mono and the `null` slave accepts any format without conversion); there is
    no sound card behind it. The device has no clock, so it delivers faster than real time.
    """
    home = folder / "home"
    home.mkdir(exist_ok=True)
    (home / ".asoundrc").write_text(textwrap.dedent(f"""\
        pcm.!default {{
            type file
            slave.pcm "null"
            file "/dev/null"
            infile "{raw_input}"
            format "raw"
        }}
        """))
    return home


def run_python(code: str, home: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter (so PortAudio initialises with our HOME)."""
    env = dict(os.environ)
    if home is not None:
        env["HOME"] = str(home)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=str(REPO_ROOT))


def best_correlation(captured: np.ndarray, reference: np.ndarray, max_lag: int = 4000) -> tuple[float, int]:
    """Highest Pearson correlation of `reference` against `captured` shifted by 0..max_lag samples."""
    n = reference.shape[0]
    best, best_lag = -1.0, 0
    for lag in range(0, max(1, min(max_lag, captured.shape[0] - n) + 1)):
        seg = captured[lag:lag + n]
        if seg.shape[0] < n or not np.any(seg):
            continue
        c = float(np.corrcoef(seg, reference)[0, 1])
        if c > best:
            best, best_lag = c, lag
            if c > 0.999:
                break
    return best, best_lag


TINY_DIMS = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=1,
                 n_vocab=51865, n_text_ctx=32, n_text_state=64, n_text_head=2, n_text_layer=1)


EOT_TOKEN = 50257  # <|endoftext|> in both of Whisper's tokenizers; special tokens follow it


def tiny_whisper(seed: int = 0, **dims: int) -> Any:
    """A random-weight multilingual Whisper with one layer per stack (~3.5 M parameters).

    Whisper leaves the decoder's positional embedding as `torch.empty` (its real values come from
    the checkpoint), so it is filled here; otherwise the logits are NaN. The special tokens'
    embeddings (ids from <|endoftext|> on) are zeroed so their logits are 0 and the greedy pick is
    a text token: the output is random words, not an endless <|notimestamps|>."""
    import torch
    from whisper.model import ModelDimensions, Whisper

    torch.manual_seed(seed)
    model = Whisper(ModelDimensions(**{**TINY_DIMS, **dims}))
    with torch.no_grad():
        model.decoder.positional_embedding.normal_(0.0, 0.02)
        model.decoder.token_embedding.weight[EOT_TOKEN:] = 0.0
    return model.eval()


def save_tiny_whisper(path: Path, seed: int = 0) -> Path:
    """Write a checkpoint in Whisper's own format ({"dims", "model_state_dict"})."""
    import torch

    model = tiny_whisper(seed)
    torch.save({"dims": dataclasses.asdict(model.dims), "model_state_dict": model.state_dict()}, path)
    return path


class RecordingCommands:
    """A double of `window.commands` that records every call; `label_names` like the controller."""

    def __init__(self, labels: tuple[str, ...] = ("dog", "cat", "person")) -> None:
        self.calls: list[tuple[str, tuple]] = []
        self.labels = list(labels)

    def label_names(self) -> list[str]:
        return list(self.labels)

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))

    def accept(self) -> None: self._record("accept")
    def cancel(self) -> None: self._record("cancel")
    def undo(self) -> None: self._record("undo")
    def redo(self) -> None: self._record("redo")
    def delete_selected(self) -> None: self._record("delete_selected")
    def next_image(self) -> None: self._record("next_image")
    def previous_image(self) -> None: self._record("previous_image")
    def segment_everything(self) -> None: self._record("segment_everything")
    def set_polarity(self, positive: bool) -> None: self._record("set_polarity", positive)
    def zoom_in(self) -> None: self._record("zoom_in")
    def zoom_out(self) -> None: self._record("zoom_out")
    def text_prompt(self, text: str) -> None: self._record("text_prompt", text)
    def voice_prompt(self, text: str) -> None: self._record("voice_prompt", text)
    def set_label(self, name: str) -> None: self._record("set_label", name)


class DictStore:
    """A QSettings stand-in: `value(key, default)` / `setValue(key, value)` over a dict."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        self.values = dict(values or {})

    def value(self, key: str, defaultValue: Any = None) -> Any:  # noqa: N803 - QSettings' name
        return self.values.get(key, defaultValue)

    def setValue(self, key: str, value: Any) -> None:  # noqa: N802 - QSettings' name
        self.values[key] = value
