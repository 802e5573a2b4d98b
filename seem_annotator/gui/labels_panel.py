"""The labels dock: the project's label set with colours, digit keys and per-label counts.

A pure view: it shows `LabelRecord`s and asks for changes through signals; the main window applies
them to the project (each one a stored, immediate action) and calls `set_labels` again.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QColorDialog,
    QHBoxLayout,
    QInputDialog,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from seem_annotator.core.records import LabelRecord


def swatch(color: tuple[int, int, int], size: int = 14) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(*color))
    return QIcon(pixmap)


class LabelsPanel(QWidget):
    """Label list + add / rename / merge / colour / key buttons + "keep last label"."""

    use_label = Signal(str)
    add_requested = Signal(str)
    rename_requested = Signal(int, str)
    merge_requested = Signal(int, int)  # source id, target id
    color_requested = Signal(int, object)  # id, (r, g, b)
    shortcut_requested = Signal(int, object)  # id, digit or None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.labels: list[LabelRecord] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["Label", "Key", "Count"])
        self.tree.setRootIsDecorated(False)
        self.tree.setColumnWidth(0, 150)
        self.tree.setColumnWidth(1, 36)
        self.tree.itemDoubleClicked.connect(lambda item, _col: self.use_label.emit(item.data(0, Qt.ItemDataRole.UserRole + 1)))
        layout.addWidget(self.tree)
        row = QHBoxLayout()
        for text, slot in (("Add", self._add), ("Rename", self._rename), ("Merge", self._merge),
                           ("Colour", self._color), ("Key", self._key)):
            button = QPushButton(text, self)
            button.setObjectName(f"label_{text.lower()}")
            button.clicked.connect(slot)
            row.addWidget(button)
        layout.addLayout(row)
        self.keep_last = QCheckBox("Keep last label", self)
        self.keep_last.setToolTip("Accept new objects with the last used label instead of the model's proposal")
        layout.addWidget(self.keep_last)

    def set_labels(self, labels: list[LabelRecord], counts: dict[str, int]) -> None:
        selected = self.selected_id()
        self.labels = list(labels)
        self.tree.clear()
        for label in self.labels:
            digit = self.digit_of(label)
            item = QTreeWidgetItem([label.name, "" if digit is None else str(digit),
                                    str(counts.get(label.name, 0))])
            item.setIcon(0, swatch(label.color))
            item.setData(0, Qt.ItemDataRole.UserRole, label.id)
            item.setData(0, Qt.ItemDataRole.UserRole + 1, label.name)
            self.tree.addTopLevelItem(item)
            if label.id == selected:
                self.tree.setCurrentItem(item)

    def selected_id(self) -> int | None:
        item = self.tree.currentItem()
        return None if item is None else int(item.data(0, Qt.ItemDataRole.UserRole))

    def names(self) -> list[str]:
        return [label.name for label in self.labels]

    def digit_of(self, label: LabelRecord) -> int | None:
        """The digit key that picks `label` (the inverse of `by_shortcut`), shown in the Key column."""
        if any(other.shortcut for other in self.labels):
            return label.shortcut
        index = next((i for i, other in enumerate(self.labels) if other.id == label.id), None)
        return None if index is None or index >= 9 else index + 1

    def by_shortcut(self, digit: int) -> LabelRecord | None:
        for label in self.labels:
            if label.shortcut == digit:
                return label
        # Without explicit keys, digits follow list order so 1-9 always do something.
        if not any(label.shortcut for label in self.labels) and 0 < digit <= len(self.labels):
            return self.labels[digit - 1]
        return None

    def _current(self) -> LabelRecord | None:
        selected = self.selected_id()
        return next((label for label in self.labels if label.id == selected), None)

    def request_add(self) -> None:
        """Ctrl+L: ask for a new label name."""
        self._add()

    def _add(self) -> None:
        name, ok = QInputDialog.getText(self, "Add label", "Label name:")
        if ok and name.strip():
            self.add_requested.emit(name.strip())

    def _rename(self) -> None:
        label = self._current()
        if label is None:
            return
        name, ok = QInputDialog.getText(self, "Rename label", f"New name for {label.name!r}:", text=label.name)
        if ok and name.strip() and name.strip() != label.name:
            self.rename_requested.emit(label.id, name.strip())

    def _merge(self) -> None:
        label = self._current()
        if label is None or len(self.labels) < 2:
            return
        others = [other.name for other in self.labels if other.id != label.id]
        name, ok = QInputDialog.getItem(self, "Merge label", f"Merge {label.name!r} into:", others, 0, False)
        if ok:
            target = next(other for other in self.labels if other.name == name)
            self.merge_requested.emit(label.id, target.id)

    def _color(self) -> None:
        label = self._current()
        if label is None:
            return
        color = QColorDialog.getColor(QColor(*label.color), self, f"Colour of {label.name}")
        if color.isValid():
            self.color_requested.emit(label.id, (color.red(), color.green(), color.blue()))

    def _key(self) -> None:
        label = self._current()
        if label is None:
            return
        items = ["none"] + [str(d) for d in range(1, 10)]
        shown = self.digit_of(label)  # what the Key column says, list order while no key is set
        text, ok = QInputDialog.getItem(self, "Label key", f"Digit key for {label.name!r}:", items,
                                        0 if shown is None else shown, False)
        digit = None if text == "none" else int(text)
        if not ok or digit == shown:
            return
        if not any(other.shortcut for other in self.labels):
            # The first key set by hand: the other labels keep the keys the column showed them
            # (else they would all lose theirs, since digits then mean only keys set by hand).
            # (Read them all first: each request refreshes this panel's labels.)
            kept = [(other.id, self.digit_of(other)) for other in self.labels if other.id != label.id]
            for other_id, implicit in kept:
                if implicit is not None and implicit != digit:
                    self.shortcut_requested.emit(other_id, implicit)
        self.shortcut_requested.emit(label.id, digit)
