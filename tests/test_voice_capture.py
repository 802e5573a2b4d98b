"""Recording through the real PortAudio/ALSA stack, and the reasons given when it cannot work.

This machine has no sound card, so an ALSA `file` PCM reading a WAV that espeak-ng spoke serves as
the microphone. PortAudio reads ALSA's configuration when sounddevice is imported, so each real
capture runs in a fresh interpreter with HOME pointing at the generated `.asoundrc`.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from voice_support import alsa_file_home, best_correlation, require_audio_stack, run_python, speak

from seem_annotator.voice import capture
from seem_annotator.voice.capture import (
    NO_INPUT_DEVICE,
    PORTAUDIO_MISSING,
    AudioUnavailableError,
    Recorder,
    check_available,
)

CAPTURE_SCRIPT = """
import json, sys
import numpy as np
from seem_annotator.voice.capture import Recorder, check_available, list_input_devices
status = check_available()
levels = []
rec = Recorder(max_seconds={seconds}, on_level=levels.append)
rec.start()
finished = rec.wait_finished(30)
audio = rec.stop()
np.save(sys.argv[1] if len(sys.argv) > 1 else {out!r}, audio)
print(json.dumps({{"ok": status.ok, "reason": status.reason, "finished": finished,
                  "limit": rec.limit_reached, "levels": len(levels), "peak": rec.peak,
                  "devices": [d.name for d in list_input_devices()]}}))
"""


@pytest.mark.slow
def test_real_capture_through_portaudio_matches_the_spoken_audio(tmp_path: Path) -> None:
    require_audio_stack()
    raw, reference = speak("segment the red car", tmp_path)
    home = alsa_file_home(tmp_path, raw)
    out = tmp_path / "captured.npy"
    proc = run_python(CAPTURE_SCRIPT.format(seconds=3.0, out=str(out)), home=home)
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["ok"], info["reason"]
    assert "default" in info["devices"]
    assert info["finished"] and info["limit"]  # the take ended at the maximum length
    assert info["levels"] > 0 and info["peak"] > 0.5  # the meter saw speech
    captured = np.load(out)
    assert captured.dtype == np.float32 and captured.shape == (48000,)  # 3 s at 16 kHz
    corr, lag = best_correlation(captured, reference)
    assert corr > 0.99 and lag == 0, (corr, lag)
    # After the spoken clip ends the file device gives silence, not a replay.
    assert np.abs(captured[reference.size + 100:]).max() < 1e-3


def test_recorder_rejects_silly_lengths() -> None:
    with pytest.raises(ValueError):
        Recorder(max_seconds=0)
    with pytest.raises(ValueError):
        Recorder(max_seconds=capture.MAX_MAX_SECONDS + 1)


class _PortAudioError(Exception):
    pass


def _fake_sounddevice(devices: list[dict], check_error: str | None = None, open_error: str | None = None):
    def check_input_settings(device=None, channels=None, dtype=None, samplerate=None):
        if check_error:
            raise _PortAudioError(check_error)

    def input_stream(**kwargs):
        raise _PortAudioError(open_error or "Device unavailable")

    return types.SimpleNamespace(
        PortAudioError=_PortAudioError,
        query_devices=lambda: devices,
        query_hostapis=lambda: [{"name": "ALSA"}],
        default=types.SimpleNamespace(device=[0 if devices else -1, 0]),
        check_input_settings=check_input_settings,
        InputStream=input_stream,
        CallbackStop=type("CallbackStop", (Exception,), {}),
        CallbackAbort=type("CallbackAbort", (Exception,), {}),
    )


MIC = {"index": 0, "name": "USB Mic", "max_input_channels": 1, "default_samplerate": 48000.0, "hostapi": 0}
SPEAKER = {"index": 1, "name": "Speakers", "max_input_channels": 0, "default_samplerate": 48000.0, "hostapi": 0}


class _NoPortAudio:
    """A meta-path finder making `import sounddevice` fail the way it does without libportaudio."""

    def find_spec(self, name, path=None, target=None):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return None


def test_missing_portaudio_gives_a_clear_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_NoPortAudio(), *sys.meta_path])
    status = check_available()
    assert not status.ok and status.reason == PORTAUDIO_MISSING
    assert "libportaudio2" in status.reason
    with pytest.raises(AudioUnavailableError, match="PortAudio"):
        Recorder().start()


def test_no_input_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture, "load_sounddevice", lambda: _fake_sounddevice([SPEAKER]))
    assert check_available() == capture.Availability(False, NO_INPUT_DEVICE)
    assert capture.list_input_devices() == []
    with pytest.raises(AudioUnavailableError, match="no microphone"):
        Recorder().start()


def test_device_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture, "load_sounddevice",
                        lambda: _fake_sounddevice([MIC, SPEAKER], check_error="Invalid sample rate"))
    status = check_available()
    assert not status.ok and "USB Mic" in status.reason and "Invalid sample rate" in status.reason
    assert not check_available("Headset").ok
    assert "not connected" in check_available("Headset").reason

    monkeypatch.setattr(capture, "load_sounddevice",
                        lambda: _fake_sounddevice([MIC], open_error="Device unavailable [PaErrorCode -9985]"))
    assert check_available("usb").ok  # substring, case-insensitive
    with pytest.raises(AudioUnavailableError, match="Could not record from 'USB Mic'"):
        Recorder("USB Mic").start()
