"""Keyboard focus around the label field (issue 15 item 8).

The label field is typed into between canvas actions, so it must hand the keyboard back: Enter
returns focus to the canvas; Esc closes the completion popup (and otherwise just leaves the field,
without the window's Esc "cancel the object" firing); a click on the canvas while the popup is open
closes the popup *and* acts, where Qt would spend that click closing the popup only.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication, QCompleter, QLineEdit, QWidget


class LabelFieldFocus(QObject):
    """Event filter on a line edit, its completer's popup, and the canvas it returns focus to."""

    def __init__(self, field: QLineEdit, completer: QCompleter, canvas: QWidget) -> None:
        # A child of the popup, so it outlives every event the popup and the field send while the
        # window is torn down (a filter that died first crashed the next test's window).
        super().__init__(completer.popup())
        self.field, self.popup, self.canvas = field, completer.popup(), canvas
        field.installEventFilter(self)
        self.popup.installEventFilter(self)
        field.returnPressed.connect(self.back_to_canvas_soon)

    def back_to_canvas_soon(self) -> None:
        """After Enter: once the completer is done with the key (a closing popup gives focus back
        to the field)."""
        QTimer.singleShot(0, self, self.back_to_canvas)

    def back_to_canvas(self) -> None:
        self.popup.hide()
        self.canvas.setFocus(Qt.FocusReason.OtherFocusReason)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        kind = event.type()
        if kind not in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress, QEvent.Type.MouseButtonPress):
            return False
        popup = self.popup
        if kind != QEvent.Type.MouseButtonPress and event.key() == Qt.Key.Key_Escape:
            if kind == QEvent.Type.ShortcutOverride:
                event.accept()  # Esc is ours here, not the window's "cancel"
                return True
            if popup.isVisible():
                popup.hide()
            else:
                self.back_to_canvas()
            return True
        if obj is popup and kind == QEvent.Type.MouseButtonPress and not popup.rect().contains(
                event.position().toPoint()):
            popup.hide()
            self._replay_on_canvas(event)
            return True
        return False

    def _replay_on_canvas(self, event: QMouseEvent) -> None:
        where = event.globalPosition().toPoint()
        target = QApplication.widgetAt(where)
        if target is None or not (target is self.canvas or self.canvas.isAncestorOf(target)):
            return
        self.canvas.setFocus(Qt.FocusReason.MouseFocusReason)
        local = target.mapFromGlobal(event.globalPosition())
        QApplication.sendEvent(target, QMouseEvent(event.type(), local, event.globalPosition(), event.button(),
                                                   event.buttons(), event.modifiers()))
