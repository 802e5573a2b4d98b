"""The status bar's background pre-encode progress, fed by the real worker through the bridge."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtWidgets import QStatusBar

from seem_annotator.engine.types import ImageInput
from seem_annotator.gui.status import StatusPanel
from seem_annotator.gui.worker_bridge import WorkerBridge, make_worker

pytestmark = pytest.mark.timeout(60)


class GatedEncoder:
    """A backend whose encode waits for a gate, so the test sees the progress step by step."""

    name = "gated"
    device = "cpu"

    def __init__(self) -> None:
        self.gate = threading.Semaphore(0)
        self.encoded: list[str] = []

    def supports(self, prompt_kind: str) -> bool:
        return prompt_kind == "point"

    def encode(self, image: ImageInput) -> None:
        assert self.gate.acquire(timeout=10)
        self.encoded.append(image.key)

    def predict(self, request):  # pragma: no cover - not used here
        raise NotImplementedError

    def segment_everything(self, image, labels):  # pragma: no cover - not used here
        return []


def _image(key: str) -> ImageInput:
    return ImageInput(key=key, pixels=np.zeros((8, 8, 3), np.uint8), full_size=(8, 8))


def test_status_bar_shows_prefetch_encode_counts_from_the_worker(qtbot):
    bar = QStatusBar()
    qtbot.addWidget(bar)
    bar.show()
    status = StatusPanel(bar)
    backend = GatedEncoder()
    holder: list[WorkerBridge] = []
    bridge = WorkerBridge(make_worker(backend, holder))
    holder.append(bridge)
    bridge.encode_progress.connect(status.set_encode_progress)
    seen: list[tuple[int, int]] = []
    bridge.encode_progress.connect(lambda done, total: seen.append((done, total)))
    try:
        bridge.prefetch([_image("next"), _image("prev")])
        qtbot.waitUntil(lambda: seen and seen[-1] == (0, 2), timeout=5000)
        assert status.encode.isVisible()
        assert status.encode.text() == "pre-encoding 0/2" and status.encode.maximum() == 2
        backend.gate.release()
        qtbot.waitUntil(lambda: seen[-1] == (1, 2), timeout=5000)
        assert status.encode.value() == 1 and status.encode.text() == "pre-encoding 1/2"
        backend.gate.release()
        qtbot.waitUntil(lambda: seen[-1] == (0, 0), timeout=5000)
        assert (2, 2) in seen and not status.encode.isVisible()
        assert backend.encoded == ["prev", "next"]
    finally:
        bridge.shutdown()
