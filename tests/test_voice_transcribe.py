"""Whisper plumbing with a tiny random-weight model: the text is noise, everything else is real —
loading from a checkpoint file, the worker thread, timing, cancellation, errors. No network."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from voice_support import save_tiny_whisper, tiny_whisper

from seem_annotator.errors import UserError
from seem_annotator.voice import transcribe as tr
from seem_annotator.voice.transcribe import (
    Transcriber,
    WhisperModelError,
    WhisperSettings,
    checkpoint_path,
    load_whisper_model,
)

GREEDY = dict(device="cpu", language="en", temperature=(0.0,), no_speech_threshold=None)


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(16000 * seconds)) * 0.1).astype(np.float32)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_whisper(tmp_path_factory.mktemp("whisper") / "tiny-random.pt")


def test_background_transcription_from_a_checkpoint_file(checkpoint: Path) -> None:
    transcriber = Transcriber(WhisperSettings(model=str(checkpoint), **GREEDY))
    done_in: list[str] = []
    start = time.perf_counter()
    job = transcriber.submit(_noise(2.0), on_done=lambda j: done_in.append(threading.current_thread().name))
    submit_seconds = time.perf_counter() - start
    assert submit_seconds < 0.2  # loading and decoding happen on the worker, not here
    assert job.wait(120) and job.done
    assert job.error is None, job.error
    result = job.result
    assert isinstance(result.text, str)
    assert result.device == "cpu" and result.model == str(checkpoint)
    assert result.audio_seconds == pytest.approx(2.0)
    assert result.decode_seconds > 0 and result.load_seconds > 0
    assert done_in == ["whisper-transcriber"]
    assert transcriber.model_loaded
    # A second take reuses the loaded model.
    job2 = transcriber.submit(_noise(1.0, seed=1))
    assert job2.wait(120) and job2.error is None
    transcriber.close()


def test_random_model_produces_tokens_and_jobs_run_in_order() -> None:
    transcriber = Transcriber(WhisperSettings(model="tiny-random", **GREEDY), model=tiny_whisper(seed=3))
    finished: list[int] = []
    jobs = [transcriber.submit(_noise(0.5, seed=i), on_done=lambda j: finished.append(j.id)) for i in range(3)]
    assert all(j.wait(120) for j in jobs)
    assert finished == [j.id for j in jobs]
    assert all(j.error is None for j in jobs)
    # Greedy decoding of random weights still emits text tokens (noise), proving the decode path.
    assert any(j.result.text for j in jobs)
    transcriber.close()


def test_cancel_stops_a_running_decode() -> None:
    model = tiny_whisper(seed=1)
    transcriber = Transcriber(WhisperSettings(model="tiny-random", device="cpu", language="en",
                                              temperature=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
                                              no_speech_threshold=None), model=model)
    decoder_calls = threading.Event()
    model.decoder.register_forward_pre_hook(lambda *_: decoder_calls.set())
    outcome: list[object] = []
    job = transcriber.submit(_noise(25.0), on_done=lambda j: outcome.append((j.cancelled, j.result, j.error)))
    assert decoder_calls.wait(120)  # the decode is under way
    cancelled_at = time.perf_counter()
    job.cancel()
    assert job.wait(30)
    stop_latency = time.perf_counter() - cancelled_at
    assert outcome == [(True, None, None)]
    assert stop_latency < 2.0, stop_latency  # stopped at the next forward pass, not at the end
    # The worker survives and serves the next take.
    job2 = transcriber.submit(_noise(0.5))
    assert job2.wait(120) and job2.error is None and job2.result is not None
    transcriber.close()


def test_queued_jobs_are_dropped_by_cancel_all() -> None:
    transcriber = Transcriber(WhisperSettings(model="tiny-random", **GREEDY), model=tiny_whisper())
    jobs = [transcriber.submit(_noise(1.0, seed=i)) for i in range(4)]
    transcriber.cancel_all()
    assert all(j.wait(60) for j in jobs)
    assert all(j.cancelled and j.result is None for j in jobs)
    transcriber.close()


def test_missing_weights_without_network_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args, **kwargs):
        raise OSError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", no_network)
    root = tmp_path / "whisper-cache"
    with pytest.raises(WhisperModelError) as info:
        load_whisper_model("base.en", device="cpu", download_root=root)
    message = str(info.value)
    assert str(root / "base.en.pt") in message
    assert "Network is unreachable" in message
    assert "https://openaipublic.azureedge.net/" in message and message.count("\n") == 0
    assert isinstance(info.value, UserError)


def test_missing_weights_reported_through_the_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tr, "_can_reach", lambda url: "no route to host")
    transcriber = Transcriber(WhisperSettings(model="tiny.en", device="cpu", download_root=str(tmp_path)))
    job = transcriber.submit(_noise(0.5))
    assert job.wait(30)
    assert isinstance(job.error, WhisperModelError) and str(tmp_path / "tiny.en.pt") in str(job.error)
    transcriber.close()


def test_default_cache_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert checkpoint_path("small") == tmp_path / "whisper" / "small.pt"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert checkpoint_path("large") == tmp_path / ".cache" / "whisper" / "large-v3.pt"


def test_bad_model_names_and_files(tmp_path: Path) -> None:
    with pytest.raises(WhisperModelError, match="Unknown Whisper model 'huge'"):
        load_whisper_model("huge", device="cpu")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(WhisperModelError, match="could not be loaded"):
        load_whisper_model(str(broken), device="cpu")


def test_empty_audio_is_a_user_error() -> None:
    transcriber = Transcriber(WhisperSettings(model="tiny-random", **GREEDY), model=tiny_whisper())
    with pytest.raises(UserError, match="Nothing was recorded"):
        transcriber.transcribe(np.zeros(0, np.float32))


def test_changing_the_model_setting_reloads(checkpoint: Path) -> None:
    transcriber = Transcriber(WhisperSettings(model="tiny-random", **GREEDY), model=tiny_whisper())
    assert transcriber.model_loaded
    transcriber.update_settings(model=str(checkpoint))
    assert not transcriber.model_loaded
    result = transcriber.transcribe(_noise(0.5))
    assert transcriber.model_loaded and result.model == str(checkpoint)


@pytest.mark.gpu
def test_tiny_model_on_cuda_in_half_precision() -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    transcriber = Transcriber(WhisperSettings(model="tiny-random", language="en", temperature=(0.0,),
                                              no_speech_threshold=None), model=tiny_whisper().to("cuda"))
    assert tr.pick_device(None) == "cuda"
    job = transcriber.submit(_noise(1.0))
    assert job.wait(120) and job.error is None, job.error
    assert job.result.device.startswith("cuda") and job.result.text
    transcriber.close()


def test_preload_loads_on_the_worker_and_reports_missing_weights(checkpoint: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    transcriber = Transcriber(WhisperSettings(model=str(checkpoint), **GREEDY))
    job = transcriber.preload()
    assert job is not None and job.wait(120) and job.error is None
    assert transcriber.model_loaded and transcriber.preload() is None
    transcriber.close()

    monkeypatch.setattr(tr, "_can_reach", lambda url: "Name or service not known")
    missing = Transcriber(WhisperSettings(model="base", device="cpu", download_root=str(tmp_path)))
    job = missing.preload()
    assert job.wait(30) and isinstance(job.error, WhisperModelError)
    assert str(tmp_path / "base.pt") in str(job.error)
    missing.close()


def test_a_corrupt_cached_file_is_reported_without_touching_the_network(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("the network must not be used when the file is present")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr("urllib.request.urlopen", no_network)
    (tmp_path / "tiny.pt").write_bytes(b"\x00" * 1000)
    with pytest.raises(WhisperModelError, match="could not be loaded") as info:
        load_whisper_model("tiny", device="cpu", download_root=tmp_path)
    assert str(tmp_path / "tiny.pt") in str(info.value)


def test_a_cached_official_name_loads_from_the_download_root(tmp_path: Path) -> None:
    save_tiny_whisper(tmp_path / "base.en.pt")  # stands in for the real base.en weights
    transcriber = Transcriber(WhisperSettings(model="base.en", download_root=str(tmp_path), **GREEDY))
    result = transcriber.transcribe(_noise(0.5))
    assert result.model == "base.en" and isinstance(result.text, str)
