"""Speech to text with openai-whisper, on a background thread.

One worker thread owns the Whisper model (loaded lazily, on the GPU when there is one) and runs
jobs in order. Audio arrives as float32 arrays at 16 kHz, so Whisper never calls ffmpeg. A job can
be cancelled: queued jobs are dropped, and a running one stops at the next encoder/decoder forward
pass (a forward pre-hook raises inside Whisper's loop), so a long decode does not hold the thread.

Weights come from Whisper's own cache (`$XDG_CACHE_HOME/whisper` or `~/.cache/whisper`, or a
configured folder). When they are missing and cannot be downloaded the error names the file and
where to put it.
"""

from __future__ import annotations

import itertools
import os
import queue
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from seem_annotator.errors import CheckpointError, UserError
from seem_annotator.voice.audio import SAMPLE_RATE

DEFAULT_MODEL = "base.en"
DEFAULT_LANGUAGE = "en"
_DOWNLOAD_PROBE_TIMEOUT = 5.0  # seconds; whisper's own download has no timeout at all


class WhisperModelError(CheckpointError):
    """Whisper weights are missing, cannot be downloaded, or do not load."""


class TranscriptionCancelled(Exception):
    """Raised inside the worker when the running job was cancelled."""


@dataclass(frozen=True)
class WhisperSettings:
    """What the transcriber runs.

    model: a Whisper model name (`tiny`, `base.en`, `small`, ...) or a path to a `.pt` checkpoint.
    language: ISO code such as "en"; None or "" lets Whisper detect it (multilingual models only).
    device: "cuda", "cpu", ...; None picks CUDA when present.
    download_root: folder holding `<name>.pt`; None is Whisper's default cache.
    temperature: Whisper's fallback schedule; (0.0,) is greedy only.
    no_speech_threshold: Whisper drops a window it judges silent above this probability (that is
        what stops "Thank you." appearing for a silent take); None keeps every window.
    """

    model: str = DEFAULT_MODEL
    language: str | None = DEFAULT_LANGUAGE
    device: str | None = None
    download_root: str | None = None
    temperature: tuple[float, ...] = (0.0, 0.2, 0.4)
    no_speech_threshold: float | None = 0.6


@dataclass(frozen=True)
class TranscriptionResult:
    """A finished transcription and how long it took."""

    text: str
    language: str
    audio_seconds: float
    decode_seconds: float
    load_seconds: float
    device: str
    model: str


def whisper_cache_dir() -> Path:
    """Whisper's default download folder: `$XDG_CACHE_HOME/whisper`, else `~/.cache/whisper`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "whisper"


def available_models() -> list[str]:
    """Official Whisper model names."""
    import whisper

    return list(whisper.available_models())


def _model_url(name: str) -> str | None:
    import whisper

    return getattr(whisper, "_MODELS", {}).get(name)


def checkpoint_path(name: str, download_root: str | Path | None = None) -> Path:
    """Where Whisper keeps (or would download) the weights of `name`: `<root>/<name>.pt`."""
    root = Path(download_root) if download_root else whisper_cache_dir()
    url = _model_url(name)
    return root / (Path(urllib.parse.urlparse(url).path).name if url else f"{name}.pt")


def pick_device(device: str | None = None) -> str:
    """The torch device to run Whisper on: `device` if given, else CUDA when available, else CPU."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _can_reach(url: str) -> str | None:
    """None if the download host answers on its port, else the reason it does not."""
    parts = urllib.parse.urlparse(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 443), timeout=_DOWNLOAD_PROBE_TIMEOUT):
            return None
    except OSError as exc:
        return str(exc) or type(exc).__name__


def load_whisper_model(name: str, device: str | None = None, download_root: str | Path | None = None) -> Any:
    """Load a Whisper model by official name or checkpoint path; raises `WhisperModelError`."""
    try:
        import whisper
    except ImportError as exc:
        raise WhisperModelError("Voice transcription needs the openai-whisper package "
                                "(`pip install openai-whisper`).") from exc
    device = pick_device(device)
    url = _model_url(name)
    if url is None and not Path(name).is_file():
        raise WhisperModelError(f"Unknown Whisper model '{name}'; use one of "
                                f"{', '.join(whisper.available_models())} or a path to a .pt file.")
    target = checkpoint_path(name, download_root)
    if url is not None and not target.is_file():
        reason = _can_reach(url)
        if reason is not None:
            raise WhisperModelError(
                f"Whisper model '{name}' is not on this machine and cannot be downloaded ({reason}); "
                f"download {url} on a connected machine and place it at {target}.")
    try:
        if url is not None and target.is_file():
            # Load the cached file by path: whisper would otherwise re-download it (with no
            # timeout) whenever its checksum differs, hanging on an offline machine.
            return whisper.load_model(str(target), device=device)
        root = str(download_root) if download_root else None
        return whisper.load_model(name, device=device, download_root=root)
    except Exception as exc:  # truncated/corrupt/foreign files fail in many ways (pickle, zip, keys)
        where = f"; place a good copy of {url} at {target}" if url else ""
        raise WhisperModelError(f"Whisper model '{name}' could not be loaded ({exc}){where}.") from exc


@dataclass
class TranscriptionJob:
    """A queued transcription; `on_done(job)` runs on the worker thread when it finishes."""

    id: int
    audio: np.ndarray
    hint: str | None = None
    on_done: Callable[[TranscriptionJob], None] | None = None
    load_only: bool = False  # a preload: load the model, transcribe nothing
    result: TranscriptionResult | None = None
    error: BaseException | None = None
    submitted_at: float = field(default_factory=time.monotonic)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    def cancel(self) -> None:
        """Ask the worker to drop this job; a running decode stops at its next forward pass."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until finished (done, failed or cancelled); True unless it timed out."""
        return self._done.wait(timeout)


class Transcriber:
    """Whisper on a worker thread. `submit` returns at once; `transcribe` runs in the caller.

    `model` lets callers (and tests) hand in an already-built Whisper model.
    """

    def __init__(self, settings: WhisperSettings | None = None, model: Any = None) -> None:
        self._settings = settings or WhisperSettings()
        self._model = model
        self._model_key = self._key(self._settings) if model is not None else None
        if model is not None:
            self._install_cancel_hooks(model)
        self._model_lock = threading.Lock()
        self._queue: queue.Queue[TranscriptionJob | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._current: TranscriptionJob | None = None
        self.load_seconds = 0.0

    @staticmethod
    def _key(settings: WhisperSettings) -> tuple[str, str]:
        # "auto" rather than the resolved device: resolving imports torch, and this is called on
        # the GUI thread, where a first torch import would freeze the window for seconds.
        return settings.model, settings.device or "auto"

    @property
    def settings(self) -> WhisperSettings:
        return self._settings

    def update_settings(self, **changes: Any) -> None:
        """Change settings; the model is reloaded before the next job if name or device changed."""
        self._settings = replace(self._settings, **changes)

    @property
    def model_loaded(self) -> bool:
        return self._model is not None and self._model_key == self._key(self._settings)

    def _ensure_model(self) -> Any:
        with self._model_lock:
            key = self._key(self._settings)
            if self._model is None or self._model_key != key:
                self._model = None  # free the old one before loading the next
                start = time.perf_counter()
                model = load_whisper_model(self._settings.model, pick_device(self._settings.device),
                                           self._settings.download_root)
                self.load_seconds = time.perf_counter() - start
                self._install_cancel_hooks(model)
                self._model, self._model_key = model, key
            return self._model

    def _install_cancel_hooks(self, model: Any) -> None:
        def check(_module: Any, _inputs: Any) -> None:
            job = self._current
            if job is not None and job.cancelled:
                raise TranscriptionCancelled()

        for part in (getattr(model, "encoder", None), getattr(model, "decoder", None)):
            if part is not None and not getattr(part, "_seem_cancel_hook", False):
                part.register_forward_pre_hook(check)
                part._seem_cancel_hook = True

    def transcribe(self, audio: np.ndarray, hint: str | None = None) -> TranscriptionResult:
        """Transcribe float32 mono 16 kHz `audio` (frames,) in the calling thread."""
        import whisper

        audio = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
        if audio.size == 0:
            raise UserError("Nothing was recorded, so there is nothing to transcribe.")
        model = self._ensure_model()
        settings = self._settings
        device = str(next(model.parameters()).device)
        language = settings.language or None
        if not model.is_multilingual:
            language = "en"  # .en models only speak English; a stale setting must not break them
        start = time.perf_counter()
        out = whisper.transcribe(
            model, audio, verbose=None, language=language, task="transcribe",
            temperature=settings.temperature, condition_on_previous_text=False,
            without_timestamps=True, initial_prompt=hint or None, fp16=device.startswith("cuda"),
            no_speech_threshold=settings.no_speech_threshold,
        )
        return TranscriptionResult(
            text=str(out.get("text", "")).strip(), language=str(out.get("language") or language or ""),
            audio_seconds=audio.size / SAMPLE_RATE, decode_seconds=time.perf_counter() - start,
            load_seconds=self.load_seconds, device=device, model=settings.model,
        )

    def submit(self, audio: np.ndarray, on_done: Callable[[TranscriptionJob], None] | None = None,
               hint: str | None = None) -> TranscriptionJob:
        """Queue `audio` for the worker thread and return its job immediately."""
        job = TranscriptionJob(next(self._ids), np.asarray(audio, np.float32), hint, on_done)
        self._start_worker()
        self._queue.put(job)
        return job

    def preload(self, on_done: Callable[[TranscriptionJob], None] | None = None) -> TranscriptionJob | None:
        """Load the model on the worker now (e.g. while the user is still speaking); None if it is
        already loaded. A missing-weights error arrives in the job like any other."""
        if self.model_loaded:
            return None
        job = TranscriptionJob(next(self._ids), np.zeros(0, np.float32), on_done=on_done, load_only=True)
        self._start_worker()
        self._queue.put(job)
        return job

    def cancel_all(self) -> None:
        """Cancel the running job and everything queued."""
        current = self._current
        if current is not None:
            current.cancel()
        for job in list(self._queue.queue):
            if job is not None:
                job.cancel()

    def _start_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="whisper-transcriber", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            self._current = job
            try:
                if job.load_only:
                    self._ensure_model()
                elif not job.cancelled:
                    job.result = self.transcribe(job.audio, job.hint)
            except TranscriptionCancelled:
                pass
            except Exception as exc:  # reported through the job; the worker must live on
                job.error = exc
            finally:
                self._current = None
                if job.cancelled:
                    job.result = None
                job._done.set()
            if job.on_done is not None:
                try:
                    job.on_done(job)
                except Exception:  # a broken callback must not kill the worker
                    import logging

                    logging.getLogger(__name__).exception("transcription callback failed")

    def close(self, timeout: float = 5.0) -> None:
        """Cancel everything and stop the worker thread."""
        self.cancel_all()
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)
        self._thread = None
