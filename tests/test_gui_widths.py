"""Ctrl+] / Ctrl+[ change the scribble and brush widths in bounded proportional steps, with real key
presses in the real window (issue 15 item 10: six presses took the brush from 31 to 175)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import copy_samples
from PySide6.QtCore import Qt
from test_gui_workflow import key, make_window, open_image

pytestmark = pytest.mark.timeout(120)

CTRL = Qt.KeyboardModifier.ControlModifier


def test_width_keys_step_by_a_quarter_at_most(qtbot, tmp_path: Path) -> None:
    window = make_window(qtbot, tmp_path)
    window.open_folder(copy_samples(tmp_path / "samples"))
    open_image(window, "chelsea.jpg")
    ctl = window.controller
    key(window, Qt.Key.Key_R)  # brush
    assert window.canvas.tool.name == "brush"
    window.width_spin.setValue(31)
    assert ctl.brush_width == 31
    seen = [31]
    for _ in range(6):
        key(window, Qt.Key.Key_BracketRight, CTRL)
        seen.append(window.width_spin.value())
    assert seen[-1] == round(ctl.brush_width)
    assert all(1 <= b - a <= max(1, 0.25 * a + 0.5) for a, b in zip(seen, seen[1:])), seen
    assert seen[-1] < 31 * 1.25 ** 6
    for _ in range(6):
        key(window, Qt.Key.Key_BracketLeft, CTRL)
    assert abs(window.width_spin.value() - 31) <= 4
    # A wide brush moves by a bounded step, not by a quarter of 300.
    window.width_spin.setValue(300)
    key(window, Qt.Key.Key_BracketRight, CTRL)
    assert window.width_spin.value() == 316
    # The scribble width is its own setting and stays what it was; Ctrl+] there changes only it.
    stroke = ctl.stroke_width
    key(window, Qt.Key.Key_S)
    assert window.width_spin.value() == round(stroke)
    key(window, Qt.Key.Key_BracketRight, CTRL)
    assert ctl.stroke_width > stroke and ctl.brush_width == 316
    window.close()
