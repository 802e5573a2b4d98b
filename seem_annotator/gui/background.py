"""One piece of slow file work (an export, an import, a video decode) on a background thread, its
outcome reported on the GUI thread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QProgressDialog, QWidget

from seem_annotator.errors import UserError


class BackgroundJob(QObject):
    """Runs `work(job)` on a daemon thread. `progress(done, total, text)`, `finished(result)` and
    `failed(message)` are queued to the GUI thread. A UserError's message is reported as it is;
    any other exception (a plugin's or a decoder's bug) becomes `crash(exc)`'s message, so neither
    the app nor the user's work goes down with it."""

    progress = Signal(int, int, str)
    finished = Signal(object)
    failed = Signal(str)

    def __init__(self, name: str, work: Callable[[BackgroundJob], Any], crash: Callable[[Exception], str]) -> None:
        super().__init__()
        self.name = name
        self._work, self._crash = work, crash
        self._cancel = threading.Event()
        self.thread: threading.Thread | None = None

    def report(self, done: int, total: int | None = None, text: str = "") -> None:
        self.progress.emit(int(done), int(total or 0), text)

    def iterate(self, items: Iterable, total: int | None = None, desc: str = "") -> Iterator:
        """The formats' progress protocol (`progress(items, total, desc)`) over this job's signal."""
        total = int(total or 0)
        for done, item in enumerate(items):
            self.report(done, total, desc)
            yield item
        self.report(total, total, desc)

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def start(self) -> None:
        def run() -> None:
            try:
                result = self._work(self)
            except UserError as exc:
                self.failed.emit(str(exc))
                return
            except Exception as exc:
                self.failed.emit(self._crash(exc))
                return
            self.finished.emit(result)

        self.thread = threading.Thread(target=run, name=self.name, daemon=True)
        self.thread.start()


def progress_dialog(parent: QWidget, title: str, text: str, cancel: str | None) -> QProgressDialog:
    """A window-modal progress dialog that only appears when the work takes over 0.3 s (quick jobs
    finish before it would flash up); no cancel button when `cancel` is None."""
    dialog = QProgressDialog(text, cancel, 0, 0, parent)
    if cancel is None:
        dialog.setCancelButton(None)
    dialog.setWindowTitle(title)
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    dialog.setMinimumDuration(300)
    return dialog


def show_progress(dialog: QProgressDialog, done: int, total: int, text: str | None = None) -> None:
    """`done` of `total` (0: unknown, a busy bar) in `dialog`, with `text` when given."""
    dialog.setMaximum(max(total, 0))
    dialog.setValue(min(done, total) if total else 0)
    if text:
        dialog.setLabelText(text)


def start_with_dialog(window: Any, job: BackgroundJob, dialog: QProgressDialog,
                      on_progress: Callable[[int, int, str], None], on_finished: Callable[[Any], None],
                      on_done: Callable[[Any, str | None], None] | None = None) -> BackgroundJob:
    """Start `job` under its progress dialog: the dialog's Cancel cancels it; its progress goes to
    `on_progress(done, total, text)`; its result, once the dialog has closed, to `on_finished`. A
    failure closes the dialog and is shown (a line in the status bar when the person cancelled, an
    error box otherwise), then `on_done(None, message)`. The window keeps the job until it reports."""

    def finished(result: Any) -> None:
        dialog.reset()
        on_finished(result)

    def failed(message: str) -> None:
        dialog.reset()
        if job.cancelled:
            window.status.message(message, 15000)  # asked for: no error box
        else:
            window.show_error(message, modal=True)
        if on_done is not None:
            on_done(None, message)

    dialog.canceled.connect(job.cancel)
    job.progress.connect(on_progress)
    job.finished.connect(finished)
    job.failed.connect(failed)
    jobs = getattr(window, "_background_jobs", None)
    if jobs is None:
        jobs = window._background_jobs = set()
    jobs.add(job)
    job.finished.connect(lambda _result: jobs.discard(job))
    job.failed.connect(lambda _message: jobs.discard(job))
    job.start()
    return job
