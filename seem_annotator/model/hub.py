"""Where released SEEM checkpoints live locally, and how to get them.

Checkpoints are cached as ``<cache dir>/checkpoints/<file>`` (``seem_annotator.paths.cache_dir``;
``$SEEM_ANNOTATOR_CACHE`` moves it). ``download`` fetches from Hugging Face (``xdecoder/SEEM``) with
a progress bar; without a network it says where to put the file by hand.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from seem_annotator.errors import CheckpointError, UserError
from seem_annotator.model.config import ModelInfo, known_models, resolve_model_name
from seem_annotator.paths import cache_dir

# Called with (bytes fetched, total bytes or None) as a download goes; returning False cancels it.
Watch = Callable[[int, int | None], bool]


class DownloadCancelled(UserError):
    """The person cancelled a download (nothing partial is kept: the hub deletes its temporary file)."""


def checkpoint_dir() -> Path:
    """``<cache dir>/checkpoints`` (created on demand)."""
    path = cache_dir() / "checkpoints"
    path.mkdir(parents=True, exist_ok=True)
    return path


def checkpoint_path(info: ModelInfo) -> Path:
    """Where the checkpoint of ``info`` is (or would be) cached."""
    return checkpoint_dir() / info.checkpoint


def model_url(info: ModelInfo) -> str:
    return f"https://huggingface.co/{info.repo_id}/resolve/main/{info.checkpoint}"


@dataclass(frozen=True)
class CachedModel:
    """A known model and its cache state (for ``models list`` and the GUI's model picker)."""

    info: ModelInfo
    path: Path
    cached: bool
    size_bytes: int


def list_models() -> list[CachedModel]:
    """Every known model with whether its checkpoint is in the cache."""
    rows = []
    for info in known_models().values():
        path = checkpoint_path(info)
        cached = path.is_file() and path.stat().st_size > 0
        rows.append(CachedModel(info, path, cached, path.stat().st_size if cached else 0))
    return rows


def _unknown(name: str) -> CheckpointError:
    return CheckpointError(
        f"Unknown SEEM model '{name}': use a checkpoint file path or one of {', '.join(known_models())}."
    )


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """The checkpoint file for a path or a known model name (``focalt_v1``, ``seem_focalt_v1.pt``).

    Raises CheckpointError when the name is unknown or the model is not downloaded yet (saying how to
    get it).
    """
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    info = resolve_model_name(str(name_or_path))
    if info is None:
        if path.suffix or os.sep in str(name_or_path):
            raise CheckpointError(f"Checkpoint file {path} not found.")
        raise _unknown(str(name_or_path))
    cached = checkpoint_path(info)
    if cached.is_file() and cached.stat().st_size > 0:
        return cached
    raise CheckpointError(
        f"SEEM model {info.name} is not downloaded: run 'seem-annotator models download {info.name}' "
        f"or put {info.checkpoint} at {cached}."
    )


def manual_download_hint(info: ModelInfo) -> str:
    return f"download {model_url(info)} by hand and save it as {checkpoint_path(info)}"


def download(name: str, force: bool = False, progress: bool = True, watch: Watch | None = None) -> Path:
    """Download a known model's checkpoint into the cache (no-op when already there).

    Uses ``huggingface_hub.hf_hub_download`` (its progress bar; ``HF_HUB_OFFLINE=1`` and
    ``HF_ENDPOINT`` are honoured). Raises CheckpointError with the manual-download path when offline
    or the download fails. `watch(fetched, total)` is called as bytes arrive; when it returns False
    the download stops with DownloadCancelled (huggingface_hub deletes its partial file: a later
    download starts again from the beginning).
    """
    info = resolve_model_name(name)
    if info is None:
        raise _unknown(name)
    target = checkpoint_path(info)
    if target.is_file() and target.stat().st_size > 0 and not force:
        return target
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars
    except ImportError as exc:  # declared dependency; only a broken install lands here
        raise CheckpointError(f"huggingface_hub is not installed; {manual_download_hint(info)}.") from exc
    _check_reachable(info)
    staging = checkpoint_dir() / ".download"
    if progress:
        enable_progress_bars()
    else:
        disable_progress_bars()
    extra: dict[str, Any] = {} if watch is None else {"tqdm_class": _watched_bar(watch, info)}
    try:
        fetched = Path(hf_hub_download(info.repo_id, info.checkpoint, local_dir=staging, force_download=force,
                                       **extra))
    except DownloadCancelled:
        raise
    except Exception as exc:  # offline mode, DNS, HTTP, disk: all end the same way for the user
        reason = _download_failure_reason(exc)
        raise CheckpointError(f"Could not download {info.checkpoint} ({reason}); {manual_download_hint(info)}.") from exc
    # Move into place atomically so a half-written file is never taken for a checkpoint.
    tmp = target.with_suffix(target.suffix + ".part")
    shutil.move(str(fetched), tmp)
    os.replace(tmp, target)
    return target


def _watched_bar(watch: Watch, info: ModelInfo) -> type:
    """The hub's progress bar class, reporting to `watch` and stopping when it says so (the hub
    takes a bar class; its bar sees every chunk)."""
    from huggingface_hub.utils import tqdm as hub_bar

    class WatchedBar(hub_bar):
        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            if self.disable:
                self.n += n or 0  # a hidden bar does not count, and the watch needs the count
            if not watch(int(self.n), int(self.total) if self.total else None):
                raise DownloadCancelled(f"The download of {info.checkpoint} was cancelled; nothing partial was kept "
                                        "(downloading again starts from the beginning).")
            return shown

    return WatchedBar


def _offline_mode() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _check_reachable(info: ModelInfo) -> None:
    """Fail at once with the manual-download hint when offline, instead of after the hub's retries."""
    if _offline_mode():
        raise CheckpointError(
            f"Could not download {info.checkpoint} (offline mode is on: HF_HUB_OFFLINE); {manual_download_hint(info)}."
        )
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme != "http" else 80)
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise CheckpointError(
            f"Could not download {info.checkpoint} (no network connection to {host}); {manual_download_hint(info)}."
        ) from exc


def _download_failure_reason(exc: BaseException) -> str:
    name = type(exc).__name__
    if "Offline" in name or _offline_mode():
        return "offline mode is on (HF_HUB_OFFLINE)"
    if "LocalEntryNotFound" in name or "Connect" in name or "Timeout" in name:
        return "no network connection to huggingface.co"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    return f"{name}: {text[:160]}"
