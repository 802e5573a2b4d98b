"""A SEEM model fetched on first use, from the app: asked for when a person picks a model that is
not on this machine (or presses Download in the no-checkpoint banner), downloaded on a background
thread with the megabytes fetched so far, kept in the cache for next time; no network gives the
hub's clear message with where to put the file by hand."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox

from seem_annotator.gui.background import BackgroundJob, progress_dialog
from seem_annotator.model import hub
from seem_annotator.model.config import ModelInfo, resolve_model_name

if TYPE_CHECKING:
    from seem_annotator.gui.main_window import MainWindow

DEFAULT_MODEL = "focalt_v1"  # the one the no-checkpoint banner offers: the smallest released model
Done = Callable[[Path | None, str | None], None]  # (the checkpoint or None, an error message or None)


def missing_model(backend_name: str) -> ModelInfo | None:
    """The released model a backend name such as `seem:focalt_v1` needs and this machine lacks."""
    if not backend_name.startswith("seem:"):
        return None
    info = resolve_model_name(backend_name.split(":", 1)[1])
    if info is None:
        return None
    path = hub.checkpoint_path(info)
    return None if path.is_file() and path.stat().st_size > 0 else info


def offer_download(window: MainWindow, info: ModelInfo, then: Callable[[], None]) -> None:
    """Ask whether to download `info` now; `then()` runs once it is here. Without a visible window
    (or with quiet errors) nothing is asked: the status bar says how to get it."""
    quiet = window.settings.value("ui/quiet_errors", False, type=bool)
    if not window.isVisible() or quiet:
        window.status.message(f"SEEM model {info.name} is not on this machine: Model > download it, or run "
                              f"'seem-annotator models download {info.name}'.", 15000)
        return
    answer = QMessageBox.question(
        window, "Download SEEM",
        f"SEEM {info.name} ({info.description}) is not on this machine yet.\n\nDownload {info.checkpoint} from "
        f"Hugging Face ({info.repo_id}) now? It is kept in {hub.checkpoint_dir()} for next time.")
    if answer == QMessageBox.StandardButton.Yes:
        download_model(window, info.name, then)


def download_model(window: MainWindow, name: str, then: Callable[[], None] | None = None,
                   on_done: Done | None = None) -> BackgroundJob | None:
    """Download model `name` in the background, showing the megabytes fetched so far; then run
    `then()` (switch to it). `on_done(path, error)` is called on the GUI thread when given."""
    info = resolve_model_name(name)
    if info is None:
        window.show_error(f"Unknown SEEM model {name!r}.", modal=True)
        return None
    dialog = progress_dialog(window, "Download SEEM", f"Downloading {info.checkpoint}…", "Hide")
    job = BackgroundJob(f"download-{info.name}", lambda job: hub.download(info.name, progress=False),
                        lambda exc: f"Could not download {info.checkpoint}: {type(exc).__name__}: {exc}")
    staging = hub.checkpoint_dir() / ".download"
    timer = QTimer(window)
    timer.setInterval(500)

    def show_fetched() -> None:
        text = f"Downloading {info.checkpoint}: {_megabytes(staging):.0f} MB so far"
        if dialog.isVisible():
            dialog.setLabelText(text)
        else:  # hidden: the status bar keeps the count
            window.status.message(text, 2000)

    def finished(path: Any) -> None:
        timer.stop()
        dialog.reset()
        window.status.message(f"Downloaded {info.checkpoint} to {path}.")
        if on_done is not None:
            on_done(Path(path), None)
        if then is not None:
            then()

    def failed(message: str) -> None:
        timer.stop()
        dialog.reset()
        window.show_error(message, modal=True)
        if on_done is not None:
            on_done(None, message)

    timer.timeout.connect(show_fetched)
    job.finished.connect(finished)
    job.failed.connect(failed)
    window._download_job = job  # keep it alive until it reports
    timer.start()
    job.start()
    return job


def _megabytes(folder: Path) -> float:
    """What a download has written so far (the hub stages partial files under `folder`)."""
    try:
        return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6
    except OSError:
        return 0.0
