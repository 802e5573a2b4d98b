"""Audio arrays for Whisper: WAV reading (stdlib `wave`), int-to-float conversion, resampling.

Whisper wants float32 mono at 16 kHz in [-1, 1]. Everything here works on numpy arrays so no
ffmpeg is needed anywhere in the voice path.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from seem_annotator.errors import UserError

SAMPLE_RATE = 16_000  # Whisper's input rate
MAX_WAV_SECONDS = 30 * 60  # refuse to decode absurd files into memory


class AudioFileError(UserError):
    """An audio file is missing, not a PCM WAV, or empty."""


def pcm_to_float(data: np.ndarray) -> np.ndarray:
    """Integer or float PCM samples (any shape) -> float32 in [-1, 1]."""
    if data.dtype == np.uint8:  # 8-bit WAV is unsigned, centred on 128
        return (data.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(data.dtype, np.integer):
        return data.astype(np.float32) / float(-np.iinfo(data.dtype).min)
    return data.astype(np.float32, copy=False)


def to_mono(data: np.ndarray) -> np.ndarray:
    """(frames,) or (frames, channels) -> (frames,) by averaging channels."""
    if data.ndim == 1:
        return data
    if data.ndim == 2:
        return data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    raise ValueError(f"expected (frames,) or (frames, channels) audio, got shape {data.shape}")


def resample(audio: np.ndarray, src_rate: int, dst_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling of a mono clip by zero-padding / truncating its spectrum.

    audio: (frames,) float32. Returns (round(frames * dst_rate / src_rate),) float32. Truncating the
    spectrum is an ideal low-pass, so downsampling from 44.1/48 kHz does not alias speech
    harmonics into the band Whisper listens to.
    """
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError("sample rates must be positive")
    audio = np.asarray(audio, dtype=np.float32)
    if src_rate == dst_rate or audio.size == 0:
        return audio.copy()
    n_out = int(round(audio.shape[0] * dst_rate / src_rate))
    if n_out == 0:
        return np.zeros(0, np.float32)
    spectrum = np.fft.rfft(audio.astype(np.float64))
    n_bins = n_out // 2 + 1
    if n_bins <= spectrum.shape[0]:
        spectrum = spectrum[:n_bins]
    else:
        spectrum = np.concatenate([spectrum, np.zeros(n_bins - spectrum.shape[0], spectrum.dtype)])
    out = np.fft.irfft(spectrum, n=n_out) * (n_out / audio.shape[0])
    return out.astype(np.float32)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a PCM WAV file -> (float32 mono samples, sample rate). 8/16/24/32-bit integer PCM."""
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"Audio file not found: {path}.")
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate, frames = (wav.getnchannels(), wav.getsampwidth(),
                                             wav.getframerate(), wav.getnframes())
            if frames > MAX_WAV_SECONDS * max(rate, 1):
                raise AudioFileError(f"{path} is longer than {MAX_WAV_SECONDS // 60} minutes; "
                                     "cut it into shorter clips.")
            raw = wav.readframes(frames)
    except (wave.Error, EOFError) as exc:
        # EOFError carries no text: the file ends inside the WAV header.
        reason = str(exc) or "it ends before its header does"
        raise AudioFileError(f"{path} is not a PCM WAV file ({reason}); convert it, e.g. "
                             f"`sox IN -r 16000 -c 1 -b 16 OUT.wav`.") from exc
    if width == 3:  # 24-bit: widen to int32 by hand, numpy has no int24
        b = np.frombuffer(raw, np.uint8)[: len(raw) // 3 * 3].reshape(-1, 3).astype(np.int32)
        data = ((b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)).astype(np.int32)
    else:
        dtype = {1: np.uint8, 2: np.dtype("<i2"), 4: np.dtype("<i4")}.get(width)
        if dtype is None:
            raise AudioFileError(f"{path}: unsupported sample width of {width} bytes.")
        data = np.frombuffer(raw, dtype)
    usable = data.shape[0] // channels * channels
    samples = to_mono(pcm_to_float(data[:usable]).reshape(-1, channels))
    if samples.size == 0:
        raise AudioFileError(f"{path} holds no audio samples.")
    return np.ascontiguousarray(samples, dtype=np.float32), rate


def load_for_whisper(path: str | Path) -> np.ndarray:
    """A WAV file as Whisper's input: float32 mono at 16 kHz."""
    samples, rate = read_wav(path)
    return resample(samples, rate, SAMPLE_RATE)


def write_wav(path: str | Path, audio: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write float mono audio in [-1, 1] as 16-bit PCM (used to save a take for bug reports)."""
    pcm = (np.clip(np.asarray(audio, np.float32), -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())


def rms_level(block: np.ndarray) -> float:
    """Loudness of a block as a 0..1 meter value: RMS in dBFS mapped linearly from -60 dB to 0 dB."""
    if block.size == 0:
        return 0.0
    rms = float(np.sqrt(np.mean(np.square(block, dtype=np.float64))))
    if rms <= 1e-6:
        return 0.0
    return float(min(1.0, max(0.0, (20.0 * np.log10(rms) + 60.0) / 60.0)))
