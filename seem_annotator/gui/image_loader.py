"""Images for the canvas and the model: the display proxy, the model input, a small cache, and
background loading for big files so switching to a 20000 x 15000 photograph never freezes the window.

Small images (the common case) load synchronously in a few milliseconds; big ones load on a thread
and arrive through a queue drained by a GUI-thread timer (the thread never touches Qt objects).
Neighbours pre-loaded in the background land in the same cache, so A/D is instant.
"""

from __future__ import annotations

import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QObject, QTimer

from seem_annotator.core.records import ImageRecord
from seem_annotator.engine.types import ImageInput

DISPLAY_MAX_SIDE = 6144  # bigger images are shown through a proxy; masks stay full resolution
MODEL_MAX_SIDE = 1536  # the model never needs more; backends resize further themselves
SYNC_LOAD_PIXELS = 8_000_000  # up to ~8 MP a decode takes tens of ms: not worth a thread
CACHE_BYTES = 512 * 2**20


class LoadedImage:
    """An image ready for the canvas (`display`, possibly downscaled) and the model (`model_input`)."""

    def __init__(self, record: ImageRecord, path: Path) -> None:
        from seem_annotator.core.images import file_sha256, load_for_model

        proxy = load_for_model(path, max_side=DISPLAY_MAX_SIDE)
        self.record = record
        self.display = proxy.pixels
        self.full_size = proxy.full_size
        pixels = proxy.pixels
        if max(pixels.shape[:2]) > MODEL_MAX_SIDE:
            s = MODEL_MAX_SIDE / max(pixels.shape[:2])
            pixels = cv2.resize(pixels, (max(1, round(pixels.shape[1] * s)), max(1, round(pixels.shape[0] * s))),
                                interpolation=cv2.INTER_AREA)
        key = record.sha256 or file_sha256(path)
        self.model_input = ImageInput(key=key, pixels=np.ascontiguousarray(pixels), full_size=self.full_size)

    @property
    def display_size(self) -> tuple[int, int]:
        return self.display.shape[0], self.display.shape[1]

    @property
    def nbytes(self) -> int:
        return int(self.display.nbytes + self.model_input.pixels.nbytes)


class ImageLoader(QObject):
    """Loads images synchronously or in the background and keeps the last few in memory."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cache: OrderedDict[tuple[int, str, str | None], LoadedImage] = OrderedDict()
        self._lock = threading.Lock()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._callbacks: dict[int, Callable[[LoadedImage | None, Exception | None], None]] = {}
        self._ticket = 0
        self._timer = QTimer(self)
        self._timer.setInterval(30)
        self._timer.timeout.connect(self._drain)

    @staticmethod
    def _key(record: ImageRecord, path: Path) -> tuple[int, str, str | None]:
        # The content hash too: a file changed on disk (found by a rescan) is loaded afresh.
        return record.id, str(path), record.sha256

    def cached(self, record: ImageRecord, path: Path) -> LoadedImage | None:
        with self._lock:
            image = self._cache.get(self._key(record, path))
            if image is not None:
                self._cache.move_to_end(self._key(record, path))
            return image

    def _store(self, record: ImageRecord, path: Path, image: LoadedImage) -> None:
        with self._lock:
            self._cache[self._key(record, path)] = image
            self._cache.move_to_end(self._key(record, path))
            while len(self._cache) > 1 and sum(i.nbytes for i in self._cache.values()) > CACHE_BYTES:
                self._cache.popitem(last=False)

    def load_now(self, record: ImageRecord, path: Path) -> LoadedImage:
        image = self.cached(record, path) or LoadedImage(record, path)
        self._store(record, path, image)
        return image

    def needs_thread(self, record: ImageRecord) -> bool:
        return record.width * record.height > SYNC_LOAD_PIXELS

    def load_async(self, record: ImageRecord, path: Path,
                   done: Callable[[LoadedImage | None, Exception | None], None]) -> int:
        """Load on a thread; `done(image, error)` runs later on the GUI thread. Returns a ticket;
        `forget()` makes pending loads report nowhere (the user moved on)."""
        self._ticket += 1
        ticket = self._ticket
        self._callbacks[ticket] = done
        out = self._done

        def run() -> None:
            try:
                out.put((ticket, record, path, LoadedImage(record, path), None))
            except Exception as exc:  # delivered to the GUI thread as the error it is
                out.put((ticket, record, path, None, exc))

        self._timer.start()
        threading.Thread(target=run, name="load-image", daemon=True).start()
        return ticket

    def preload(self, record: ImageRecord, path: Path) -> LoadedImage | None:
        """Build and cache an image on the calling (background) thread; None when unreadable."""
        try:
            image = self.cached(record, path) or LoadedImage(record, path)
        except Exception:  # an unreadable neighbour is reported when it is opened
            return None
        self._store(record, path, image)
        return image

    def forget(self) -> None:
        self._callbacks.clear()

    def _drain(self) -> None:
        while True:
            try:
                ticket, record, path, image, error = self._done.get_nowait()
            except queue.Empty:
                break
            if image is not None:
                self._store(record, path, image)
            callback = self._callbacks.pop(ticket, None)
            if callback is not None:
                callback(image, error)
        if not self._callbacks:
            self._timer.stop()
