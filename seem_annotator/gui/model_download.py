"""A SEEM model fetched on first use, from the app: asked for when a person picks a model that is
not on this machine (or presses Download in the no-checkpoint banner), downloaded on a background
thread with the megabytes fetched so far and a Cancel button, kept in the cache for next time; no
network gives the hub's clear message with where to put the file by hand."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from seem_annotator.gui.background import BackgroundJob, progress_dialog, show_progress, start_with_dialog
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
    """Download model `name` in the background, in a dialog that does not block the window (the
    classical backend keeps working) showing the megabytes fetched and a Cancel button; then run
    `then()` (switch to it). `on_done(path, error)` is called on the GUI thread when given. A
    cancelled download leaves nothing behind (the hub deletes its partial file)."""
    info = resolve_model_name(name)
    if info is None:
        window.show_error(f"Unknown SEEM model {name!r}.", modal=True)
        return None
    dialog = progress_dialog(window, "Download SEEM", f"Downloading {info.checkpoint}…", "Cancel download")
    dialog.setWindowModality(Qt.WindowModality.NonModal)

    def work(job: BackgroundJob) -> Path:
        def watch(fetched: int, total: int | None) -> bool:
            job.report(fetched // 1_000_000, (total or 0) // 1_000_000)
            return not job.cancelled

        return hub.download(info.name, progress=False, watch=watch)

    job = BackgroundJob(f"download-{info.name}", work,
                        lambda exc: f"Could not download {info.checkpoint}: {type(exc).__name__}: {exc}")

    def show_fetched(done: int, total: int, _text: str) -> None:
        of = f" of {total}" if total else ""
        show_progress(dialog, done, total, f"Downloading {info.checkpoint}: {done}{of} MB")

    def cancel() -> None:  # the download stops at its next chunk
        window.status.message(f"Cancelling the download of {info.checkpoint}…", 5000)

    def finished(path: Any) -> None:
        window.status.message(f"Downloaded {info.checkpoint} to {path}.")
        if on_done is not None:
            on_done(Path(path), None)
        if then is not None:
            then()

    dialog.canceled.connect(cancel)
    return start_with_dialog(window, job, dialog, show_fetched, finished, on_done)
