"""Pieces the file dialogs (export, import, video import) share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)


def format_combo(parent: QWidget, formats: dict[str, Any]) -> QComboBox:
    """The formats by name (COCO and LabelMe first), each shown with its description."""
    combo = QComboBox(parent)
    for name in sorted(formats, key=lambda n: (n not in ("coco", "labelme"), n)):
        desc = formats[name].description
        combo.addItem(f"{name} - {desc}" if desc else name, name)
    return combo


def path_row(parent: QWidget, browse: Callable[[], None]) -> tuple[QHBoxLayout, QLineEdit]:
    """A path field with a Browse… button beside it."""
    row = QHBoxLayout()
    field = QLineEdit(parent)
    button = QPushButton("Browse…", parent)
    button.clicked.connect(browse)
    row.addWidget(field, 1)
    row.addWidget(button)
    return row, field


def note(parent: QWidget, text: str) -> QLabel:
    label = QLabel(text, parent)
    label.setWordWrap(True)
    return label


def ok_cancel(dialog: QDialog, ok_text: str) -> QDialogButtonBox:
    """OK (named `ok_text`) and Cancel, wired to the dialog's accept and reject."""
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, dialog)
    buttons.button(QDialogButtonBox.StandardButton.Ok).setText(ok_text)
    buttons.accepted.connect(dialog.accept)
    buttons.rejected.connect(dialog.reject)
    return buttons
