"""Every action of the app with its default shortcut(s), user overrides kept in QSettings, and the
cheat-sheet dialog that lists (and edits) them.

Actions are declared once here; the main window binds each id to a command. Keyboard-first
labelling means nothing should need the mouse except the prompts themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QKeySequenceEdit,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

SETTINGS_GROUP = "shortcuts"


@dataclass(frozen=True)
class ActionSpec:
    id: str
    text: str
    defaults: tuple[str, ...]
    group: str


ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("open_folder", "Open folder…", ("Ctrl+O",), "File"),
    ActionSpec("rescan", "Rescan folder (new and changed images)", ("F5",), "File"),
    ActionSpec("import_video", "Import video…", ("Ctrl+I",), "File"),
    ActionSpec("import_frames", "Import frames folder…", ("Ctrl+Shift+I",), "File"),
    ActionSpec("import_annotations", "Import annotations (COCO, LabelMe)…", ("Ctrl+Shift+O",), "File"),
    ActionSpec("undo_import", "Undo the last import…", ("Ctrl+Shift+U",), "File"),
    ActionSpec("export", "Export…", ("Ctrl+E",), "File"),
    ActionSpec("quit", "Quit", ("Ctrl+Q",), "File"),
    ActionSpec("accept", "Accept object", ("Return", "Enter"), "Object"),
    ActionSpec("accept_as", "Accept with typed label…", ("Ctrl+Return",), "Object"),
    ActionSpec("cancel", "Discard object / cancel gesture", ("Esc",), "Object"),
    ActionSpec("undo", "Undo", ("Ctrl+Z",), "Edit"),
    ActionSpec("redo", "Redo", ("Ctrl+Shift+Z", "Ctrl+Y"), "Edit"),
    ActionSpec("delete", "Delete selected annotation", ("Delete",), "Edit"),
    ActionSpec("relabel", "Relabel selected…", ("L",), "Edit"),
    ActionSpec("merge", "Merge selected annotations", ("Ctrl+M",), "Edit"),
    ActionSpec("subtract", "Subtract others from first selected (hole)", ("Ctrl+Shift+M",), "Edit"),
    ActionSpec("split", "Split selected into connected parts", ("Ctrl+K",), "Edit"),
    ActionSpec("raise", "Bring selected forward", ("]",), "Edit"),
    ActionSpec("lower", "Send selected backward", ("[",), "Edit"),
    ActionSpec("next_alternative", "Next alternative mask", ("Tab",), "Object"),
    ActionSpec("toggle_polarity", "Toggle click polarity (add/remove)", ("N",), "Object"),
    ActionSpec("text_prompt", "Type a text prompt", ("T", "/"), "Object"),
    ActionSpec("segment_everything", "Segment everything…", ("Shift+E",), "Object"),
    ActionSpec("use_reference", "Segment from marked reference region", ("Ctrl+R",), "Object"),
    ActionSpec("review_proposals", "Review proposals (start / stop)", ("Ctrl+P",), "Review"),
    ActionSpec("reject_proposal", "Reject the proposal shown", ("X",), "Review"),
    ActionSpec("accept_proposals_above", "Accept every proposal above the threshold", ("Shift+Return",), "Review"),
    ActionSpec("auto_annotate", "Auto-annotate images with SEEM…", ("Ctrl+Shift+A",), "Review"),
    ActionSpec("next_image", "Next image", ("D", "Right"), "Navigate"),
    ActionSpec("previous_image", "Previous image", ("A", "Left"), "Navigate"),
    ActionSpec("toggle_done", "Mark image done / not done", ("Ctrl+D",), "Navigate"),
    ActionSpec("zoom_in", "Zoom in", ("Ctrl++", "+", "="), "View"),
    ActionSpec("zoom_out", "Zoom out", ("Ctrl+-", "-"), "View"),
    ActionSpec("fit", "Fit to window", ("F", "Ctrl+0"), "View"),
    ActionSpec("opacity_up", "More mask opacity", (".",), "View"),
    ActionSpec("opacity_down", "Less mask opacity", (",",), "View"),
    ActionSpec("toggle_outlines", "Show / hide outlines", ("Shift+O",), "View"),
    ActionSpec("width_up", "Wider stroke / brush", ("Ctrl+]",), "Tools"),
    ActionSpec("width_down", "Narrower stroke / brush", ("Ctrl+[",), "Tools"),
    ActionSpec("tool_point", "Tool: click prompts", ("C",), "Tools"),
    ActionSpec("tool_box", "Tool: box prompt", ("B",), "Tools"),
    ActionSpec("tool_polygon", "Tool: polygon prompt", ("P",), "Tools"),
    ActionSpec("tool_stroke", "Tool: scribble prompt", ("S",), "Tools"),
    ActionSpec("tool_brush", "Tool: brush", ("R",), "Tools"),
    ActionSpec("tool_eraser", "Tool: eraser", ("E",), "Tools"),
    ActionSpec("tool_manual", "Tool: manual polygon", ("M",), "Tools"),
    ActionSpec("tool_vertices", "Tool: edit polygon vertices", ("V",), "Tools"),
    ActionSpec("tool_select", "Tool: select annotations", ("Q",), "Tools"),
    ActionSpec("tool_referring", "Tool: mark reference region", ("Shift+R",), "Tools"),
    ActionSpec("add_label", "Add a label…", ("Ctrl+L",), "Labels"),
    ActionSpec("backend", "Choose backend / device…", ("Ctrl+B",), "Model"),
    ActionSpec("cheat_sheet", "Keyboard shortcuts…", ("F1", "?"), "Help"),
) + tuple(ActionSpec(f"label_{d}", f"Use label {d}", (str(d),), "Labels") for d in range(1, 10))

SPECS = {spec.id: spec for spec in ACTIONS}


class ShortcutManager:
    """Creates one QAction per spec on `owner`, with the user's shortcuts (or the defaults)."""

    def __init__(self, owner: QWidget, settings: QSettings | None = None) -> None:
        self.owner = owner
        self.settings = settings or QSettings()
        self.actions: dict[str, QAction] = {}

    def sequences(self, action_id: str) -> list[QKeySequence]:
        stored = self.settings.value(f"{SETTINGS_GROUP}/{action_id}")
        texts = SPECS[action_id].defaults if stored is None else [t for t in str(stored).split(";;") if t]
        return [QKeySequence(t) for t in texts]

    def bind(self, action_id: str, handler: Callable[[], object]) -> QAction:
        spec = SPECS[action_id]
        action = QAction(spec.text, self.owner)
        action.setShortcuts(self.sequences(action_id))
        # Window-wide so shortcuts work whichever panel has focus; text fields still get their keys
        # because Qt lets a focused line edit claim plain letters first.
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(lambda _checked=False: handler())
        self.owner.addAction(action)
        self.actions[action_id] = action
        return action

    def set_sequences(self, action_id: str, texts: list[str]) -> None:
        self.settings.setValue(f"{SETTINGS_GROUP}/{action_id}", ";;".join(texts))
        if action_id in self.actions:
            self.actions[action_id].setShortcuts([QKeySequence(t) for t in texts])

    def reset(self) -> None:
        self.settings.remove(SETTINGS_GROUP)
        for action_id, action in self.actions.items():
            action.setShortcuts([QKeySequence(t) for t in SPECS[action_id].defaults])

    def conflicts(self) -> dict[str, list[str]]:
        """Key sequence text -> action ids bound to it, for sequences used more than once."""
        seen: dict[str, list[str]] = {}
        for action_id, action in self.actions.items():
            for seq in action.shortcuts():
                seen.setdefault(seq.toString(), []).append(action_id)
        return {k: v for k, v in seen.items() if len(v) > 1}


class CheatSheetDialog(QDialog):
    """All actions and their shortcuts; the first shortcut of each can be changed in place."""

    def __init__(self, manager: ShortcutManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(620, 640)
        self.manager = manager
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Click a shortcut to change it; changes are saved at once. "
                                "Mouse: left click adds, right click or Shift+click removes, middle drag "
                                "or Ctrl+drag pans, wheel zooms."))
        ids = [spec.id for spec in ACTIONS if spec.id in manager.actions]
        self.table = QTableWidget(len(ids), 3, self)
        self.table.setHorizontalHeaderLabels(["Group", "Action", "Shortcut"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self._editors: dict[str, QKeySequenceEdit] = {}
        for row, action_id in enumerate(ids):
            spec = SPECS[action_id]
            self.table.setItem(row, 0, QTableWidgetItem(spec.group))
            self.table.setItem(row, 1, QTableWidgetItem(spec.text))
            seqs = manager.actions[action_id].shortcuts()
            editor = QKeySequenceEdit(seqs[0] if seqs else QKeySequence(), self.table)
            extra = ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in seqs[1:])
            editor.setToolTip(f"also: {extra}" if extra else "")
            editor.editingFinished.connect(lambda aid=action_id: self._changed(aid))
            self.table.setCellWidget(row, 2, editor)
            self._editors[action_id] = editor
        layout.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close
                                   | QDialogButtonBox.StandardButton.RestoreDefaults, self)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(self._restore)
        layout.addWidget(buttons)

    def _changed(self, action_id: str) -> None:
        seq = self._editors[action_id].keySequence()
        others = [s.toString() for s in self.manager.actions[action_id].shortcuts()[1:]]
        self.manager.set_sequences(action_id, [seq.toString(), *others] if not seq.isEmpty() else others)

    def _restore(self) -> None:
        self.manager.reset()
        for action_id, editor in self._editors.items():
            seqs = self.manager.actions[action_id].shortcuts()
            editor.setKeySequence(seqs[0] if seqs else QKeySequence())
