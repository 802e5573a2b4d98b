"""Menus and the tool bar, built from the shortcut registry so every action has a key and a menu entry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QActionGroup, QKeySequence
from PySide6.QtWidgets import QCompleter, QLabel, QLineEdit, QSlider, QSpinBox, QToolBar

from seem_annotator.gui.annotation_import import (
    import_annotations_interactive,
    undo_import_interactive,
    undo_import_text,
)
from seem_annotator.gui.edit_tools import TOOL_CLASSES
from seem_annotator.gui.field_focus import LabelFieldFocus
from seem_annotator.gui.video_import import import_frames_interactive, import_video_interactive

if TYPE_CHECKING:
    from seem_annotator.gui.main_window import MainWindow


def bind_actions(window: MainWindow) -> None:
    """One QAction per registered id, bound to the window's command API."""
    c = window.commands
    s = window.shortcuts
    handlers = {
        "open_folder": window.choose_folder, "rescan": window.rescan_folder, "export": window.export,
        "import_video": lambda: import_video_interactive(window),
        "import_frames": lambda: import_frames_interactive(window),
        "import_annotations": lambda: import_annotations_interactive(window),
        "undo_import": lambda: undo_import_interactive(window),
        "quit": window.close,
        "accept": c.accept, "accept_as": lambda: window.ask_label(for_selection=False), "cancel": c.cancel,
        "undo": c.undo, "redo": c.redo, "delete": c.delete_selected, "relabel": c.relabel_selected,
        "merge": c.merge_selected, "subtract": c.subtract_selected, "split": c.split_selected,
        "raise": c.raise_selected, "lower": c.lower_selected, "next_alternative": c.next_alternative,
        "toggle_polarity": c.toggle_polarity, "text_prompt": window.focus_text_prompt,
        "segment_everything": c.segment_everything, "use_reference": c.use_reference,
        "next_image": c.next_image, "previous_image": c.previous_image, "toggle_done": c.toggle_done,
        "zoom_in": c.zoom_in, "zoom_out": c.zoom_out, "fit": c.fit,
        "opacity_up": lambda: c.change_opacity(0.1), "opacity_down": lambda: c.change_opacity(-0.1),
        "toggle_outlines": c.toggle_outlines, "width_up": lambda: c.change_width(True),
        "width_down": lambda: c.change_width(False), "backend": window.choose_backend,
        "cheat_sheet": window.show_cheat_sheet, "add_label": window.labels_panel.request_add,
        "review_proposals": c.toggle_review, "reject_proposal": c.reject_proposal,
        "accept_proposals_above": c.accept_proposals_above, "auto_annotate": window.review_ui.auto_annotate,
    }
    for tool in TOOL_CLASSES:
        handlers[f"tool_{tool.name}"] = lambda name=tool.name: c.set_tool(name)
    for digit in range(1, 10):
        handlers[f"label_{digit}"] = lambda d=digit: window.use_label_digit(d)
    for action_id, handler in handlers.items():
        s.bind(action_id, handler)


def build_menus(window: MainWindow) -> None:
    a = window.shortcuts.actions
    bar = window.menuBar()
    file_menu = bar.addMenu("&File")
    file_menu.addAction(a["open_folder"])
    window.recent_menu = file_menu.addMenu("Open &recent")
    window.recent_menu.aboutToShow.connect(window.fill_recent_menu)
    file_menu.addAction(a["rescan"])
    file_menu.addAction(a["import_video"])
    file_menu.addAction(a["import_frames"])
    file_menu.addAction(a["import_annotations"])
    file_menu.addAction(a["undo_import"])

    def name_undo_import() -> None:
        text, enabled = undo_import_text(window)
        a["undo_import"].setText(text)
        a["undo_import"].setEnabled(enabled)

    file_menu.aboutToShow.connect(name_undo_import)
    # Greyed only while the menu shows: its key must still work after the next import.
    file_menu.aboutToHide.connect(lambda: a["undo_import"].setEnabled(True))
    file_menu.addAction(a["export"])
    window.sidecar_action = file_menu.addAction("Write LabelMe files beside images automatically")
    window.sidecar_action.setCheckable(True)
    window.sidecar_action.setChecked(window.settings.value("export/sidecars", False, type=bool))
    window.sidecar_action.toggled.connect(lambda on: window.settings.setValue("export/sidecars", on))
    file_menu.addSeparator()
    file_menu.addAction(a["quit"])
    groups = {
        "&Edit": ["undo", "redo", None, "delete", "relabel", "merge", "subtract", "split", "raise", "lower"],
        "&Object": ["accept", "accept_as", "cancel", None, "toggle_polarity", "next_alternative", "text_prompt",
                    "use_reference", "segment_everything"],
        "&Navigate": ["next_image", "previous_image", "toggle_done"],
        "&Review": ["auto_annotate", None, "review_proposals", "reject_proposal", "accept_proposals_above"],
        "&View": ["zoom_in", "zoom_out", "fit", None, "opacity_up", "opacity_down", "toggle_outlines"],
        "&Tools": [f"tool_{t.name}" for t in TOOL_CLASSES] + [None, "width_up", "width_down"],
        "&Model": ["backend"],
        "&Help": ["cheat_sheet"],
    }
    for title, ids in groups.items():
        menu = bar.addMenu(title)
        for action_id in ids:
            if action_id is None:
                menu.addSeparator()
            else:
                menu.addAction(a[action_id])
    labels_menu = bar.addMenu("&Labels")
    labels_menu.addAction(a["add_label"])
    labels_menu.addSeparator()
    for digit in range(1, 10):
        labels_menu.addAction(a[f"label_{digit}"])


def build_toolbar(window: MainWindow) -> None:
    a = window.shortcuts.actions
    bar = QToolBar("Tools", window)
    bar.setObjectName("tools_toolbar")
    bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
    group = QActionGroup(window)
    short_names = {"point": "Click", "box": "Box", "polygon": "Polygon", "stroke": "Scribble", "brush": "Brush",
                   "eraser": "Eraser", "manual": "Manual", "vertices": "Vertices", "select": "Select",
                   "referring": "Reference"}
    for tool in TOOL_CLASSES:
        action = a[f"tool_{tool.name}"]
        action.setCheckable(True)
        action.setIconText(short_names[tool.name])
        keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        action.setToolTip(f"{tool.title}{f' ({keys})' if keys else ''}: {tool.hint}")
        group.addAction(action)
        bar.addAction(action)
    window.tool_group = group
    bar.addSeparator()
    window.polarity_action = bar.addAction("+ add")
    window.polarity_action.setToolTip("Click polarity (N): left click adds / removes")
    window.polarity_action.triggered.connect(window.commands.toggle_polarity)
    bar.addWidget(QLabel(" width ", bar))
    window.width_spin = QSpinBox(bar)
    window.width_spin.setRange(1, 400)
    window.width_spin.setToolTip("Scribble / brush width in image pixels (Ctrl+[ / Ctrl+])")
    window.width_spin.valueChanged.connect(window.width_changed)
    bar.addWidget(window.width_spin)
    bar.addWidget(QLabel(" opacity ", bar))
    window.opacity_slider = QSlider(Qt.Orientation.Horizontal, bar)
    window.opacity_slider.setRange(0, 100)
    window.opacity_slider.setMaximumWidth(110)
    window.opacity_slider.setValue(int(window.settings.value("view/opacity", 45)))
    window.opacity_slider.valueChanged.connect(window.opacity_changed)
    bar.addWidget(window.opacity_slider)

    prompt_bar = QToolBar("Prompt", window)
    prompt_bar.setObjectName("prompt_toolbar")
    window.addToolBarBreak()
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, prompt_bar)
    window.text_field = QLineEdit(prompt_bar)
    window.text_field.setObjectName("text_prompt")
    window.text_field.setPlaceholderText("Text prompt (T): describe the object, Enter to segment")
    window.text_field.returnPressed.connect(lambda: window.commands.text_prompt(window.text_field.text()))
    prompt_bar.addWidget(window.text_field)
    prompt_bar.addWidget(QLabel("  label ", prompt_bar))
    window.label_field = QLineEdit(prompt_bar)
    window.label_field.setObjectName("label_field")
    window.label_field.setPlaceholderText("label for Enter (proposal / last used)")
    window.label_field.setMaximumWidth(260)
    window.label_completer = QCompleter([], window.label_field)
    window.label_completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
    window.label_field.setCompleter(window.label_completer)
    window.label_field.returnPressed.connect(lambda: window.commands.accept(window.label_field.text() or None))
    window.label_focus = LabelFieldFocus(window.label_field, window.label_completer, window.canvas)
    prompt_bar.addWidget(window.label_field)
    window.object_info = QLabel("", prompt_bar)
    window.object_info.setObjectName("object_info")
    window.object_info.setMinimumWidth(260)
    prompt_bar.addWidget(window.object_info)
    prompt_bar.addAction(a["segment_everything"])
    prompt_bar.addAction(a["export"])
