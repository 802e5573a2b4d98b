"""Each tool says how to use it: its toolbar button's tooltip and, when chosen, the status bar
(found driving the window under Xvfb: a new user drawing a polygon had no way to learn how to close
it, and the status bar said only "Polygon prompt")."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import copy_samples
from PySide6.QtCore import Qt
from test_gui_workflow import key, make_window, open_image

from seem_annotator.gui.edit_tools import TOOL_CLASSES

pytestmark = pytest.mark.timeout(120)


def test_every_tool_shows_how_to_use_it(qtbot, tmp_path: Path) -> None:
    window = make_window(qtbot, tmp_path)
    window.open_folder(copy_samples(tmp_path / "samples"))
    open_image(window, "chelsea.jpg")
    assert {tool.name for tool in TOOL_CLASSES} >= {"point", "box", "polygon", "stroke", "brush", "eraser",
                                                     "manual", "vertices", "select", "referring"}
    for tool in TOOL_CLASSES:
        assert len(tool.hint) > 30, tool.name
        action = window.shortcuts.actions[f"tool_{tool.name}"]
        keys = action.shortcut().toString()
        assert keys and f"({keys})" in action.toolTip() and tool.hint in action.toolTip()
    key(window, Qt.Key.Key_P)
    assert window.canvas.tool.name == "polygon"
    shown = window.status.full_text()
    assert "close with the first corner, a double-click or Enter" in shown and "Backspace" in shown
    key(window, Qt.Key.Key_C)
    assert "right click" in window.status.full_text()
    window.close()
