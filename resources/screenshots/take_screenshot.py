"""Reproduce resources/screenshots/main_window.png: the real main window on a bundled sample, driven
with real mouse events and the classical backend (no checkpoint needed).

    xvfb-run -s "-screen 0 1600x1000x24" env QT_QPA_PLATFORM=xcb python resources/screenshots/take_screenshot.py
    QT_QPA_PLATFORM=offscreen python resources/screenshots/take_screenshot.py   # without Xvfb

The project is made in a temporary copy of the samples; nothing in the repository changes except
the PNG.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    from PySide6.QtCore import QSettings, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from seem_annotator.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    app.setApplicationName("seem-annotator")
    work = Path(tempfile.mkdtemp(prefix="seem-shot-"))
    folder = work / "samples"
    shutil.copytree(REPO / "resources" / "samples", folder)
    settings = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("ui/quiet_errors", True)
    window = MainWindow(settings=settings, backend_name="classical")
    window.resize(1560, 940)
    window.show()
    QTest.qWaitForWindowActive(window)
    window.open_folder(folder)
    ctl = window.controller
    window.show_image(window.project.image_by_name("coffee.jpg").id)
    vp = window.canvas.viewport()

    def at(x: float, y: float):
        return window.canvas.mapFromScene(x, y)

    def answered() -> None:
        deadline = time.time() + 180
        while (ctl._latest is not None or ctl.candidate_mask is None) and time.time() < deadline:
            QTest.qWait(30)

    def box(x0: float, y0: float, x1: float, y1: float) -> None:
        window.commands.set_tool("box")
        QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(x0, y0))
        QTest.mouseMove(vp, at((x0 + x1) / 2, (y0 + y1) / 2))
        QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(x1, y1))
        answered()

    def click(x: float, y: float, positive: bool = True) -> None:
        window.commands.set_tool("point")
        button = Qt.MouseButton.LeftButton if positive else Qt.MouseButton.RightButton
        QTest.mouseClick(vp, button, Qt.KeyboardModifier.NoModifier, at(x, y))
        answered()

    # Three accepted objects, each from a box (plus clicks where they help), bottom to top.
    box(72, 70, 482, 392)
    click(120, 250)
    window.commands.accept("saucer")
    box(320, 62, 430, 330)
    click(365, 290)
    window.commands.accept("spoon")
    box(200, 92, 372, 196)
    window.commands.accept("coffee")
    # An object in progress: its prompts and the dashed candidate outline stay on screen.
    box(168, 18, 412, 312)
    click(250, 60)
    window.commands.set_tool("point")
    QTest.mouseMove(vp, at(560, 30))  # the pointer rests on the table: no hover highlight
    QTest.qWait(300)
    out = HERE / "main_window.png"
    window.grab().save(str(out))
    print(f"wrote {out} ({len(ctl.annotations)} annotations, object in progress: {ctl.session is not None})")
    window.close()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
