"""The label field hands the keyboard back to the canvas (issue 15 item 8), with real key and mouse
events: Enter returns focus to the canvas, Esc closes the completion popup (and does not cancel the
object), and a click on the canvas while the popup is open closes it and also acts."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import copy_samples
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from test_gui_workflow import CHELSEA_CAT, key, make_window, open_image, view_point, wait_candidate

pytestmark = pytest.mark.timeout(120)


def labelled_window(qtbot, tmp_path: Path):
    window = make_window(qtbot, tmp_path)
    window.open_folder(copy_samples(tmp_path / "samples"))
    for name in ("cat", "cup", "car"):
        window.project.add_label(name)
    window.refresh_labels()
    open_image(window, "chelsea.jpg")
    window.controller.tiny_mask_pixels, window.controller.tiny_mask_fraction = 0, 0.0
    return window


def type_in_label_field(qtbot, window, text: str) -> None:
    window.label_field.setFocus()
    QTest.keyClicks(window.label_field, text)
    qtbot.waitUntil(lambda: window.label_completer.popup().isVisible(), timeout=5000)


def test_enter_in_the_label_field_gives_the_canvas_the_keyboard(qtbot, tmp_path: Path) -> None:
    window = labelled_window(qtbot, tmp_path)
    ctl = window.controller
    key(window, Qt.Key.Key_C)
    QTest.mouseClick(window.canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     view_point(window, *CHELSEA_CAT))
    wait_candidate(qtbot, window)
    window.label_field.setFocus()
    QTest.keyClicks(window.label_field, "cat")
    QTest.keyClick(window.label_field, Qt.Key.Key_Return)
    assert len(ctl.annotations) == 1
    qtbot.waitUntil(lambda: QApplication.focusWidget() is window.canvas, timeout=2000)
    # A tool key now reaches the canvas instead of being typed into the field.
    QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_B)
    assert window.canvas.tool.name == "box" and window.label_field.text() == ""
    window.close()


def test_esc_closes_the_popup_and_never_cancels_the_object(qtbot, tmp_path: Path) -> None:
    window = labelled_window(qtbot, tmp_path)
    ctl = window.controller
    QTest.mouseClick(window.canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     view_point(window, *CHELSEA_CAT))
    wait_candidate(qtbot, window)
    type_in_label_field(qtbot, window, "c")
    popup = window.label_completer.popup()
    QTest.keyClick(popup, Qt.Key.Key_Escape)  # while the popup is open it gets the keys
    assert not popup.isVisible()
    assert ctl.session is not None and ctl.session.rounds, "Esc in the field must not discard the object"
    QTest.keyClick(window.label_field, Qt.Key.Key_Escape)  # a second Esc leaves the field
    assert QApplication.focusWidget() is window.canvas
    assert ctl.session is not None and ctl.session.rounds
    window.close()


def test_a_canvas_click_with_the_popup_open_closes_it_and_acts(qtbot, tmp_path: Path) -> None:
    window = labelled_window(qtbot, tmp_path)
    ctl = window.controller
    type_in_label_field(qtbot, window, "c")
    popup = window.label_completer.popup()
    # While a popup is open, the window system delivers every press to it, wherever it lands.
    on_canvas = window.canvas.viewport().mapToGlobal(view_point(window, *CHELSEA_CAT))
    inside_popup = QPoint(2, 2)
    assert not popup.rect().contains(popup.mapFromGlobal(on_canvas)) and popup.rect().contains(inside_popup)
    QTest.mouseClick(popup, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, popup.mapFromGlobal(on_canvas))
    assert not popup.isVisible()
    assert QApplication.focusWidget() is window.canvas
    assert len(ctl.pending) == 1 or ctl._latest is not None, "the click also made a prompt"
    wait_candidate(qtbot, window)
    assert ctl.session is not None and len(ctl.session.rounds) == 1
    window.close()
