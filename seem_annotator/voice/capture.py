"""Push-to-talk recording with sounddevice (PortAudio): 16 kHz mono, level meter, length limit.

`sounddevice` is imported lazily: it loads the PortAudio shared library at import time and raises
OSError when that library is missing, and the rest of the app must work without it. Everything a
user can get wrong (no PortAudio, no microphone, a device that vanished or refuses the format)
becomes a `DeviceError` with one clear sentence, and `check_available` returns that sentence
without raising so the GUI can put it in a tooltip.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from seem_annotator.errors import DeviceError
from seem_annotator.voice.audio import SAMPLE_RATE, pcm_to_float, resample, rms_level, to_mono

DEFAULT_MAX_SECONDS = 15.0
MAX_MAX_SECONDS = 30.0  # Whisper decodes one 30 s window; longer takes would be cut anyway

PORTAUDIO_MISSING = ("Voice input needs the PortAudio library, which was not found; install it "
                     "(Debian/Ubuntu: `sudo apt install libportaudio2`, macOS: `brew install portaudio`).")
NO_INPUT_DEVICE = "Voice input is unavailable: no microphone or other audio input device was found."


class AudioUnavailableError(DeviceError):
    """Recording cannot start: no PortAudio, no input device, or the device failed."""


@dataclass(frozen=True)
class InputDevice:
    """One PortAudio device that can record."""

    index: int
    name: str
    channels: int
    default_samplerate: float
    hostapi: str
    is_default: bool

    @property
    def label(self) -> str:
        return f"{self.name} ({self.hostapi})" + (" — default" if self.is_default else "")


@dataclass(frozen=True)
class Availability:
    """Whether recording can work; `reason` is a user-facing sentence when it cannot."""

    ok: bool
    reason: str = ""


def load_sounddevice() -> ModuleType:
    """Import sounddevice, turning a missing PortAudio library into `AudioUnavailableError`."""
    try:
        import sounddevice
    except OSError as exc:  # sounddevice raises OSError("PortAudio library not found")
        raise AudioUnavailableError(PORTAUDIO_MISSING) from exc
    except ImportError as exc:
        raise AudioUnavailableError("Voice input needs the Python package sounddevice "
                                    "(`pip install sounddevice`).") from exc
    return sounddevice


def refresh_devices() -> None:
    """Re-scan audio devices (PortAudio lists them once, when it initialises)."""
    sd = load_sounddevice()
    try:
        sd._terminate()
        sd._initialize()
    except Exception as exc:  # PortAudioError or a changed private API: keep the old list
        raise AudioUnavailableError(f"Could not re-scan audio devices: {exc}.") from exc


def list_input_devices() -> list[InputDevice]:
    """Every device with at least one input channel, default first."""
    sd = load_sounddevice()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
        default_in = sd.default.device[0]
    except sd.PortAudioError as exc:
        raise AudioUnavailableError(f"The audio system reported an error: {exc}.") from exc
    found = []
    for info in devices:
        if info["max_input_channels"] <= 0:
            continue
        found.append(InputDevice(
            index=int(info["index"]), name=str(info["name"]), channels=int(info["max_input_channels"]),
            default_samplerate=float(info["default_samplerate"]),
            hostapi=str(hostapis[info["hostapi"]]["name"]), is_default=info["index"] == default_in,
        ))
    found.sort(key=lambda d: (not d.is_default, d.index))
    return found


def resolve_device(device: int | str | None) -> InputDevice:
    """The input device for a setting: None/"" = the system default, an index, or a name
    (exact, else the first device whose name contains it, case-insensitively)."""
    devices = list_input_devices()
    if not devices:
        raise AudioUnavailableError(NO_INPUT_DEVICE)
    if device is None or device == "":
        return devices[0]
    if isinstance(device, int) or (isinstance(device, str) and device.isdigit()):
        for d in devices:
            if d.index == int(device):
                return d
    else:
        lowered = device.lower()
        for d in devices:
            if d.name.lower() == lowered:
                return d
        for d in devices:
            if lowered in d.name.lower():
                return d
    raise AudioUnavailableError(f"The chosen input device '{device}' is not connected; "
                                "pick another one in the voice settings.")


def check_available(device: int | str | None = None) -> Availability:
    """Can we record from `device`? Never raises; the reason is ready for a tooltip."""
    try:
        sd = load_sounddevice()
        chosen = resolve_device(device)
        try:
            sd.check_input_settings(device=chosen.index, channels=1)
        except Exception as exc:  # PortAudioError, or ValueError for an unusable device
            return Availability(False, f"The input device '{chosen.name}' cannot record: {exc}.")
    except AudioUnavailableError as exc:
        return Availability(False, str(exc))
    return Availability(True)


class Recorder:
    """Records one push-to-talk take.

    `start()` opens the stream; PortAudio's thread appends int16 blocks and updates `level`;
    `stop()` closes it and returns float32 mono at 16 kHz, shape (frames,). Recording ends by
    itself after `max_seconds` (`limit_reached` becomes true and `on_limit` is called from the
    audio thread). `on_level(value)` gets a 0..1 meter value per block, also from the audio thread:
    GUI code should poll `level` or forward through a queued signal.
    """

    def __init__(self, device: int | str | None = None, max_seconds: float = DEFAULT_MAX_SECONDS,
                 on_level: Callable[[float], None] | None = None,
                 on_limit: Callable[[], None] | None = None) -> None:
        if not 0 < max_seconds <= MAX_MAX_SECONDS:
            raise ValueError(f"max_seconds must be in (0, {MAX_MAX_SECONDS}], got {max_seconds}")
        self.device = device
        self.max_seconds = float(max_seconds)
        self.on_level = on_level
        self.on_limit = on_limit
        self.level = 0.0
        self.peak = 0.0
        self.overflows = 0
        self.limit_reached = False
        self.samplerate = SAMPLE_RATE
        self._channels = 1
        self._blocks: list[np.ndarray] = []
        self._frames = 0
        self._max_frames = 0
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._stream = None
        self._started_at = 0.0
        self._callback_error: BaseException | None = None

    @property
    def is_recording(self) -> bool:
        return self._stream is not None and not self._finished.is_set()

    @property
    def seconds(self) -> float:
        """Seconds of audio captured so far."""
        return self._frames / float(self.samplerate)

    def wait_finished(self, timeout: float | None = None) -> bool:
        """Block until the length limit ended the take (or it was stopped); True if it ended."""
        return self._finished.wait(timeout)

    def _open_settings(self, sd: ModuleType, dev: InputDevice) -> tuple[int, int]:
        # Ask for what Whisper wants; devices that cannot do 16 kHz mono get their own rate and
        # we resample at the end.
        for rate, channels in ((SAMPLE_RATE, 1), (int(dev.default_samplerate), 1),
                               (int(dev.default_samplerate), min(2, dev.channels))):
            try:
                sd.check_input_settings(device=dev.index, channels=channels, dtype="int16",
                                        samplerate=rate)
                return rate, channels
            except Exception:  # this combination is refused: try the next one
                continue
        raise AudioUnavailableError(f"The input device '{dev.name}' accepts neither 16 kHz nor its "
                                    f"own default rate of {dev.default_samplerate:.0f} Hz.")

    def start(self) -> None:
        """Open the input stream and start capturing. Raises `AudioUnavailableError`."""
        if self._stream is not None:
            raise RuntimeError("Recorder.start() called twice; make a new Recorder per take")
        sd = load_sounddevice()
        dev = resolve_device(self.device)
        self.samplerate, self._channels = self._open_settings(sd, dev)
        self._max_frames = int(round(self.max_seconds * self.samplerate))

        def callback(indata: np.ndarray, frames: int, time_info: object, status: object) -> None:
            try:
                if status:
                    self.overflows += 1
                with self._lock:
                    room = self._max_frames - self._frames
                    block = indata[:room].copy()
                    self._blocks.append(block)
                    self._frames += block.shape[0]
                    full = self._frames >= self._max_frames
                level = rms_level(pcm_to_float(block))
                self.level = level
                self.peak = max(self.peak, level)
                if self.on_level is not None:
                    self.on_level(level)
            except Exception as exc:  # never let an exception die silently in PortAudio's thread
                self._callback_error = exc
                raise sd.CallbackAbort from exc
            if full:
                self.limit_reached = True
                if self.on_limit is not None:
                    self.on_limit()
                raise sd.CallbackStop

        try:
            self._stream = sd.InputStream(
                device=dev.index, samplerate=self.samplerate, channels=self._channels, dtype="int16",
                callback=callback, finished_callback=self._finished.set,
            )
            self._started_at = time.monotonic()
            self._stream.start()
        except sd.PortAudioError as exc:
            self._stream = None
            raise AudioUnavailableError(f"Could not record from '{dev.name}': {exc}.") from exc

    def stop(self) -> np.ndarray:
        """Stop (if still running), close the stream and return the take: float32 (frames,) at 16 kHz."""
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception as exc:  # the device vanished mid-take: keep what we captured
                self._callback_error = self._callback_error or exc
        self._finished.set()
        self.level = 0.0
        if self._callback_error is not None and not self._blocks:
            raise AudioUnavailableError(f"Recording failed: {self._callback_error}.")
        with self._lock:
            blocks, self._blocks = self._blocks, []
        if not blocks:
            return np.zeros(0, np.float32)
        audio = to_mono(pcm_to_float(np.concatenate(blocks)))
        return resample(audio, self.samplerate, SAMPLE_RATE)
