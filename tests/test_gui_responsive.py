"""The window stays responsive while the model works: a timer on the GUI thread never stalls more
than 50 ms while a (fake, deliberately slow) backend decodes on the worker thread."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtTest import QTest

from seem_annotator.core.prompts import SPATIAL_KINDS
from seem_annotator.engine.types import Candidate, DecodeRequest, ImageInput, SegmentationBackend

pytestmark = pytest.mark.timeout(120)

REPO_ROOT = Path(__file__).resolve().parents[1]
DECODE_S = 1.0


class SlowBackend:
    """A real SegmentationBackend whose decode takes DECODE_S seconds: a disk around the last click."""

    name = "slow-fake"
    device = "cpu"

    def __init__(self) -> None:
        self.calls = 0

    def supports(self, prompt_kind: str) -> bool:
        return prompt_kind in SPATIAL_KINDS

    def encode(self, image: ImageInput) -> None:
        pass

    def predict(self, request: DecodeRequest) -> Candidate:
        self.calls += 1
        time.sleep(DECODE_S)  # stands in for a slow model; releases the GIL like real kernels do
        h, w = request.image.full_size
        point = request.prompts[-1]
        yy, xx = np.mgrid[:h, :w]
        mask = (yy - point.y) ** 2 + (xx - point.x) ** 2 < 40 ** 2
        return Candidate(mask=mask, score=0.9, labels=[("unknown", 0.0)], backend=self.name,
                         timings={"total": DECODE_S * 1000})

    def segment_everything(self, image: ImageInput, labels: tuple[str, ...]) -> list[Candidate]:
        return []


def test_gui_thread_never_stalls_during_a_slow_decode(qtbot, tmp_path: Path) -> None:
    from seem_annotator.gui.main_window import MainWindow

    assert isinstance(SlowBackend(), SegmentationBackend)
    folder = tmp_path / "samples"
    shutil.copytree(REPO_ROOT / "resources" / "samples", folder)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("ui/quiet_errors", True)
    backend = SlowBackend()
    window = MainWindow(settings=settings, backend=backend)
    qtbot.addWidget(window)
    window.show()
    assert QTest.qWaitForWindowActive(window)
    assert window.open_folder(folder)
    ctl = window.controller

    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    timer.start()
    started = time.perf_counter()
    for x in (200.0, 240.0):  # a second click while the first decodes: the first answer goes stale
        QTest.mouseClick(window.canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         window.canvas.mapFromScene(x, 200.0))
        qtbot.wait(100)
    qtbot.waitUntil(lambda: ctl._latest is None and ctl.candidate_mask is not None, timeout=30000)
    qtbot.wait(150)  # the result is drawn: include that work too
    elapsed = time.perf_counter() - started
    timer.stop()

    assert elapsed >= DECODE_S  # the timer really ran across the decode
    assert len(gaps) > elapsed / 0.05
    assert max(gaps) < 0.050, f"GUI thread stalled {max(gaps) * 1000:.0f} ms"
    # Only the newest answer is shown and stored: one round with both clicks.
    assert len(ctl.session.rounds) == 1
    assert len(ctl.session.all_prompts()) == 2
    assert ctl.candidate_mask[200, 240] and not ctl.candidate_mask[200, 160]
    window.close()
