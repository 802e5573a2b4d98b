"""Engine worker callbacks -> Qt signals.

The engine's worker runs inference on its own thread and reports through plain callbacks. Emitting
a Qt signal from that thread queues the call to the receiver's (GUI) thread, so every slot that
touches widgets runs on the GUI thread and the window never waits for the model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from seem_annotator.engine.types import DecodeRequest, ImageInput


class WorkerBridge(QObject):
    """Wraps an engine worker (`submit`, `prefetch`, `set_backend`, `shutdown`).

    Signals carry the request (or a job tag) back with the answer so the receiver can drop stale
    answers: `result(request, candidate)`, `failed(request, exception)`,
    `everything_done(image_key, candidates)`, `everything_failed(image_key, exception)`.
    """

    result = Signal(object, object)
    failed = Signal(object, object)
    everything_done = Signal(object, object)
    everything_failed = Signal(object, object)
    backend_changed = Signal(object)  # the new backend
    backend_failed = Signal(object)  # exception

    def __init__(self, worker: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = worker
        self.pending = 0
        self._lock = threading.Lock()

    # The callbacks run on the worker thread: they only emit.
    def submit(self, request: DecodeRequest) -> None:
        with self._lock:
            self.pending += 1

        def done(candidate: Any) -> None:
            self._finish()
            self.result.emit(request, candidate)

        def fail(exc: BaseException) -> None:
            self._finish()
            self.failed.emit(request, exc)

        self.worker.submit(request, done, fail)

    def _finish(self) -> None:
        with self._lock:
            self.pending = max(0, self.pending - 1)

    def prefetch(self, images: list[ImageInput]) -> None:
        prefetch = getattr(self.worker, "prefetch", None)
        if prefetch is not None:
            prefetch(images)

    def segment_everything(self, image: ImageInput, labels: tuple[str, ...]) -> None:
        """Run the backend's segment-everything off the GUI thread."""
        method: Callable | None = getattr(self.worker, "segment_everything", None)
        if method is not None:
            method(image, labels, lambda cands: self.everything_done.emit(image.key, cands),
                   lambda exc: self.everything_failed.emit(image.key, exc))
            return
        backend = self.backend

        def run() -> None:
            try:
                candidates = backend.segment_everything(image, labels)
            except BaseException as exc:  # reported to the user, never raised on this thread
                self.everything_failed.emit(image.key, exc)
                return
            self.everything_done.emit(image.key, candidates)

        threading.Thread(target=run, name="segment-everything", daemon=True).start()

    @property
    def backend(self) -> Any:
        return getattr(self.worker, "backend", None)

    def set_backend(self, factory: Callable[[], Any]) -> None:
        """Build a backend off the GUI thread (loading a checkpoint takes seconds) and install it."""

        def run() -> None:
            try:
                backend = factory()
                self.worker.set_backend(backend)
            except BaseException as exc:
                self.backend_failed.emit(exc)
                return
            self.backend_changed.emit(backend)

        threading.Thread(target=run, name="load-backend", daemon=True).start()

    def shutdown(self) -> None:
        shutdown = getattr(self.worker, "shutdown", None)
        if shutdown is not None:
            shutdown()
