"""WAV reading, resampling and the level meter (pure numpy, no audio device)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from seem_annotator.voice.audio import (
    AudioFileError,
    load_for_whisper,
    read_wav,
    resample,
    rms_level,
    write_wav,
)


def _tone(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _dominant_freq(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spectrum) * rate / x.size)


@pytest.mark.parametrize("src", [8000, 22050, 44100, 48000])
def test_resample_keeps_pitch_length_and_loudness(src: int) -> None:
    x = _tone(440.0, src, 1.0)
    y = resample(x, src, 16000)
    assert y.dtype == np.float32 and y.shape == (16000,)
    assert abs(_dominant_freq(y, 16000) - 440.0) < 2.0
    assert abs(np.sqrt(np.mean(y[1000:-1000] ** 2)) - 0.5 / np.sqrt(2)) < 0.01


def test_resample_removes_content_above_the_new_nyquist() -> None:
    x = _tone(440.0, 48000, 1.0) + _tone(12000.0, 48000, 1.0)  # 12 kHz cannot exist at 16 kHz
    y = resample(x, 48000, 16000)
    spectrum = np.abs(np.fft.rfft(y))
    freqs = np.fft.rfftfreq(y.size, 1 / 16000)
    assert spectrum[np.abs(freqs - 440) < 3].max() > 100 * spectrum[np.abs(freqs - 4000) < 3].max()


def test_resample_identity_and_empty() -> None:
    x = _tone(300.0, 16000, 0.1)
    np.testing.assert_array_equal(resample(x, 16000, 16000), x)
    assert resample(np.zeros(0, np.float32), 44100).shape == (0,)
    with pytest.raises(ValueError):
        resample(x, 0, 16000)


def _write(path: Path, data: bytes, channels: int, width: int, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data)


def test_read_wav_16bit_stereo_is_averaged(tmp_path: Path) -> None:
    left = (_tone(440, 16000, 0.2) * 32767).astype("<i2")
    right = np.zeros_like(left)
    path = tmp_path / "stereo.wav"
    _write(path, np.stack([left, right], 1).tobytes(), 2, 2, 16000)
    samples, rate = read_wav(path)
    assert rate == 16000 and samples.shape == (3200,)
    np.testing.assert_allclose(samples, left / 32768.0 / 2, atol=1e-4)


def test_read_wav_8_and_24_bit(tmp_path: Path) -> None:
    tone = _tone(440, 8000, 0.1)
    p8 = tmp_path / "u8.wav"
    _write(p8, np.clip(tone * 128 + 128, 0, 255).astype(np.uint8).tobytes(), 1, 1, 8000)
    s8, _ = read_wav(p8)
    np.testing.assert_allclose(s8, tone, atol=1 / 64)
    ints = np.round(tone * (2 ** 23 - 1)).astype(np.int32)
    b = ints.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]  # little-endian low 3 bytes
    p24 = tmp_path / "s24.wav"
    _write(p24, b.tobytes(), 1, 3, 8000)
    s24, _ = read_wav(p24)
    np.testing.assert_allclose(s24, tone, atol=1e-5)


def test_load_for_whisper_resamples(tmp_path: Path) -> None:
    path = tmp_path / "44k.wav"
    write_wav(path, _tone(440, 44100, 0.5), rate=44100)
    audio = load_for_whisper(path)
    assert audio.dtype == np.float32 and audio.shape == (8000,)


@pytest.mark.parametrize("content", [b"", b"RIFF0000WAVEjunk", b"not audio at all", b"hello\n"])
def test_bad_files_are_user_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioFileError) as info:
        read_wav(path)
    assert "()" not in str(info.value) and "\n" not in str(info.value)  # one line, with a reason
    with pytest.raises(AudioFileError, match="not found"):
        read_wav(tmp_path / "missing.wav")


def test_empty_wav_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    _write(path, b"", 1, 2, 16000)
    with pytest.raises(AudioFileError, match="no audio"):
        read_wav(path)


def test_rms_level() -> None:
    assert rms_level(np.zeros(100, np.float32)) == 0.0
    assert rms_level(np.ones(100, np.float32)) == pytest.approx(1.0)
    quiet = rms_level(np.full(100, 0.01, np.float32))  # -40 dBFS
    assert quiet == pytest.approx(20 / 60, abs=1e-3)
