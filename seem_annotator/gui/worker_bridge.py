"""Engine worker callbacks -> Qt signals.

The engine's worker runs inference on its own thread and reports through plain callbacks. Emitting
a Qt signal from that thread queues the call to the receiver's (GUI) thread, so every slot that
touches widgets runs on the GUI thread and the window never waits for the model.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, Signal

from seem_annotator.core import masks
from seem_annotator.engine.types import DecodeRequest, ImageInput


class WorkerBridge(QObject):
    """Wraps the engine's InferenceWorker (`submit`, `cancel`, `segment_everything`, `prefetch`,
    `set_backend`, `shutdown`); every callback it makes on its thread becomes a signal here.

    Signals carry the request (or a job tag) back with the answer so the receiver can drop stale
    answers: `result(request, candidate, rle)`, `failed(request, exception)`,
    `everything_done(image_key, candidates)`, `everything_failed(image_key, exception)`.
    `encode_progress(done, total)` follows the background pre-encoding ((0, 0): nothing queued).
    """

    result = Signal(object, object, object)  # request, candidate, its mask as RLE (None when empty)
    failed = Signal(object, object)
    everything_done = Signal(object, object)
    everything_failed = Signal(object, object)
    backend_changed = Signal(object)  # the new backend
    backend_failed = Signal(object)  # exception

    def __init__(self, worker: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = worker
        self._post = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode-result")

    notice = Signal(str)  # worker messages (e.g. out-of-memory fallbacks)
    encode_progress = Signal(int, int)  # prefetch encodes done, queued in this batch

    # The callbacks run on the worker thread: they only emit.
    def submit(self, request: DecodeRequest) -> None:
        self.worker.submit(request, self._post_result, lambda req, exc: self._emit(self.failed, req, exc))

    def _post_result(self, request: DecodeRequest, candidate: Any) -> None:
        # RLE-encoding a full-resolution mask takes a second on a 20000 x 15000 image: neither the
        # worker (its lock is held during callbacks) nor the GUI thread should pay for it.
        def encode() -> None:
            try:
                rle = masks.encode(candidate.mask) if candidate.mask.any() else None
            except Exception as exc:  # a malformed mask from a plugin backend is its error, reported
                self._emit(self.failed, request, exc)
                return
            self._emit(self.result, request, candidate, rle)

        try:
            self._post.submit(encode)
        except RuntimeError:
            pass  # shutting down

    def cancel(self, object_id: str) -> None:
        """Forget an object's queued or running request (Esc, image switch)."""
        self.worker.cancel(object_id)

    @staticmethod
    def _emit(signal: Any, *args: Any) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:
            pass  # the window was closed while the model worked: nobody is left to tell

    def prefetch(self, images: list[ImageInput]) -> None:
        self.worker.prefetch(*images)

    def segment_everything(self, image: ImageInput, labels: tuple[str, ...]) -> None:
        """Run the backend's segment-everything on the worker thread."""
        self.worker.segment_everything(image, labels,
                                       lambda img, cands: self._emit(self.everything_done, img.key, cands),
                                       lambda img, exc: self._emit(self.everything_failed, img.key, exc))

    @property
    def backend(self) -> Any:
        return self.worker.backend

    def set_backend(self, factory: Callable[[], Any]) -> None:
        """Build a backend on the worker thread (loading a checkpoint takes seconds) and install it."""
        self.worker.set_backend(factory, lambda backend: self._emit(self.backend_changed, backend),
                                lambda exc: self._emit(self.backend_failed, exc))

    def pending(self) -> int:
        return int(self.worker.pending())

    def shutdown(self) -> None:
        self.worker.shutdown(wait=True, timeout=5.0)
        self._post.shutdown(wait=True, cancel_futures=True)


def make_worker(backend: Any, bridge_holder: list | None = None) -> Any:
    """The engine's inference worker around `backend`; its notices and pre-encode progress go to
    `bridge_holder[0].notice` and `.encode_progress`."""
    from seem_annotator.engine.worker import InferenceWorker

    def on_notice(message: str) -> None:
        if bridge_holder:
            WorkerBridge._emit(bridge_holder[0].notice, message)

    def on_progress(done: int, total: int) -> None:
        if bridge_holder:
            WorkerBridge._emit(bridge_holder[0].encode_progress, done, total)

    return InferenceWorker(backend, on_notice=on_notice, on_progress=on_progress)
