"""Canvas tools: mouse gestures in image coordinates turned into prompts or mask edits.

A tool never talks to the model or the store. It calls its host (the annotation controller)
with finished values: a `Prompt`, a brush stroke, a manual polygon, a vertex edit. The host decides
what happens (a new round on the worker, an undoable edit in the project). Polarity: left button
follows the host's current polarity (voice "add"/"remove", the toolbar toggle); right button or
Shift+left gives the opposite.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QMouseEvent, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsItem, QGraphicsPathItem, QGraphicsRectItem

from seem_annotator.core.prompts import BoxPrompt, PointPrompt, PolygonPrompt, Prompt, StrokePrompt

DRAG_THRESHOLD_PX = 4  # screen pixels before a press becomes a drag
CLOSE_DISTANCE_PX = 10  # screen pixels from the first vertex that closes a polygon


class ToolHost(Protocol):
    positive: bool
    stroke_width: float
    brush_width: float

    def add_prompt(self, prompt: Prompt) -> None: ...
    def brush_edit(self, points: list[tuple[float, float]], width: float, erase: bool) -> None: ...
    def manual_polygon(self, points: list[tuple[float, float]]) -> None: ...
    def select_annotation(self, ann_id: int | None, add: bool = False) -> None: ...
    def set_reference_region(self, mask: np.ndarray) -> None: ...
    def vertex_edit_target(self) -> np.ndarray | None: ...
    def vertex_edit(self, mask: np.ndarray) -> None: ...


def _polarity(host: ToolHost, event: QMouseEvent) -> bool:
    flipped = event.button() == Qt.MouseButton.RightButton or bool(
        event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
    return host.positive != flipped


def _pen(color: QColor, width: float = 2.0, style=Qt.PenStyle.SolidLine) -> QPen:
    pen = QPen(color, width, style)
    pen.setCosmetic(True)
    return pen


class Tool:
    """Base: no-op handlers; subclasses override what they use."""

    name = "tool"
    title = "Tool"
    hint = ""  # how to use it, one line: the toolbar tooltip and the status bar when chosen
    cursor = Qt.CursorShape.CrossCursor
    wants_ctrl = False

    def __init__(self, canvas, host: ToolHost) -> None:
        self.canvas = canvas
        self.host = host
        self._preview: list[QGraphicsItem] = []

    def activate(self) -> None:
        self.update_cursor()

    def deactivate(self) -> None:
        self.cancel()

    def update_cursor(self) -> None:
        self.canvas.viewport().setCursor(self.cursor)

    def press(self, point: QPointF, event: QMouseEvent) -> None: ...
    def move(self, point: QPointF, event: QMouseEvent) -> None: ...
    def release(self, point: QPointF, event: QMouseEvent) -> None: ...
    def double_click(self, point: QPointF, event: QMouseEvent) -> None: ...

    def key(self, key: int) -> bool:
        """Handle a key while the tool is busy; True when consumed."""
        return False

    def key_enter(self) -> bool:
        """Enter pressed while busy: finish the gesture when that makes sense."""
        return self.key(Qt.Key.Key_Return)

    def busy(self) -> bool:
        """True while a gesture is in progress (Esc then cancels the gesture, not the object)."""
        return bool(self._preview)

    def cancel(self) -> None:
        for item in self._preview:
            if item.scene() is not None:
                item.scene().removeItem(item)
        self._preview = []

    def _add_preview(self, item: QGraphicsItem) -> QGraphicsItem:
        item.setZValue(7)
        self.canvas.scene().addItem(item)
        self._preview.append(item)
        return item

    def _screen_distance(self, a: QPointF, b: QPointF) -> float:
        d = (a - b) * self.canvas.zoom()
        return float((d.x() ** 2 + d.y() ** 2) ** 0.5)

    def _clamp(self, point: QPointF) -> tuple[float, float]:
        h, w = self.canvas.full_size
        return (min(max(point.x(), 0.0), w - 1e-3), min(max(point.y(), 0.0), h - 1e-3))


class PointTool(Tool):
    """Clicks: left positive, right or Shift+left negative."""

    name, title = "point", "Click (positive / negative)"
    hint = "left click adds, right click or Shift+click removes (N swaps them); Enter accepts, Esc clears"

    def press(self, point: QPointF, event: QMouseEvent) -> None:
        if event.button() not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            return
        if not self.canvas.contains_image_point(point):
            return
        self.host.add_prompt(PointPrompt(float(point.x()), float(point.y()), _polarity(self.host, event)))


class BoxTool(Tool):
    """Drag a box around the object."""

    name, title = "box", "Box"
    hint = "drag a box around the object, then click to refine; Enter accepts"

    def __init__(self, canvas, host: ToolHost) -> None:
        super().__init__(canvas, host)
        self._start: QPointF | None = None
        self._rect: QGraphicsRectItem | None = None

    def press(self, point: QPointF, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        self._start = QPointF(*self._clamp(point))
        self._rect = QGraphicsRectItem()
        self._rect.setPen(_pen(QColor(40, 220, 90), 2, Qt.PenStyle.DashLine))
        self._add_preview(self._rect)

    def move(self, point: QPointF, event: QMouseEvent) -> None:
        if self._start is not None and self._rect is not None:
            self._rect.setRect(QRectF(self._start, QPointF(*self._clamp(point))).normalized())

    def release(self, point: QPointF, event: QMouseEvent) -> None:
        if self._start is None:
            return
        start, self._start = self._start, None
        self.cancel()
        end = QPointF(*self._clamp(point))
        if self._screen_distance(start, end) < DRAG_THRESHOLD_PX:
            return
        box = BoxPrompt(start.x(), start.y(), end.x(), end.y()).normalized()
        self.host.add_prompt(box)

    def cancel(self) -> None:
        self._start = None
        self._rect = None
        super().cancel()


class _PolylineTool(Tool):
    """Shared vertex collection: click to add vertices, double-click or click the first vertex to
    close, Backspace removes the last vertex."""

    def __init__(self, canvas, host: ToolHost) -> None:
        super().__init__(canvas, host)
        self._points: list[tuple[float, float]] = []
        self._positive = True
        self._path_item: QGraphicsPathItem | None = None
        self._cursor_point: QPointF | None = None

    def color(self) -> QColor:
        return QColor(40, 220, 90) if self._positive else QColor(235, 60, 60)

    def press(self, point: QPointF, event: QMouseEvent) -> None:
        if event.button() not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            return
        if not self._points:
            self._positive = _polarity(self.host, event)
            self._path_item = QGraphicsPathItem()
            self._add_preview(self._path_item)
        elif len(self._points) >= 3 and self._screen_distance(point, QPointF(*self._points[0])) < CLOSE_DISTANCE_PX:
            self._finish()
            return
        self._points.append(self._clamp(point))
        self._redraw()

    def move(self, point: QPointF, event: QMouseEvent) -> None:
        if self._points:
            self._cursor_point = point
            self._redraw()

    def double_click(self, point: QPointF, event: QMouseEvent) -> None:
        # The double click's first press already added a vertex here.
        if len(self._points) >= 3:
            self._finish()

    def key(self, key: int) -> bool:
        if not self._points:
            return False
        if key == Qt.Key.Key_Backspace:
            self._points.pop()
            if not self._points:
                self.cancel()
            else:
                self._redraw()
            return True
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and len(self._points) >= 3:
            self._finish()
            return True
        return False

    def _redraw(self) -> None:
        if self._path_item is None:
            return
        path = QPainterPath()
        path.moveTo(*self._points[0])
        for x, y in self._points[1:]:
            path.lineTo(x, y)
        if self._cursor_point is not None:
            path.lineTo(self._cursor_point)
        self._path_item.setPen(_pen(self.color(), 2))
        fill = self.color()
        fill.setAlpha(35)
        self._path_item.setBrush(QBrush(fill))
        self._path_item.setPath(path)

    def _finish(self) -> None:
        points = list(self._points)
        positive = self._positive
        self.cancel()
        if len(points) >= 3:
            self.finished(points, positive)

    def finished(self, points: list[tuple[float, float]], positive: bool) -> None:
        raise NotImplementedError

    def busy(self) -> bool:
        return bool(self._points)

    def cancel(self) -> None:
        self._points = []
        self._path_item = None
        self._cursor_point = None
        super().cancel()


class PolygonTool(_PolylineTool):
    """A polygon prompt: its filled area marks the object (or, negative, what is not)."""

    name, title = "polygon", "Polygon prompt"
    hint = ("click the corners; close with the first corner, a double-click or Enter; Backspace removes the "
            "last corner; right-click first for a negative polygon")

    def finished(self, points: list[tuple[float, float]], positive: bool) -> None:
        self.host.add_prompt(PolygonPrompt(tuple(points), positive))


class ManualPolygonTool(_PolylineTool):
    """Draw the mask yourself, no model involved; becomes the candidate to accept with Enter."""

    name, title = "manual", "Manual polygon"
    hint = ("click the outline's corners, close it like a polygon (first corner, double-click or Enter); no "
            "model involved; Enter accepts")

    def color(self) -> QColor:
        return QColor(255, 200, 0)

    def finished(self, points: list[tuple[float, float]], positive: bool) -> None:
        self.host.manual_polygon(points)


class _DragTool(Tool):
    """Shared freehand drag collection with a round-brush preview."""

    def __init__(self, canvas, host: ToolHost) -> None:
        super().__init__(canvas, host)
        self._points: list[tuple[float, float]] = []
        self._button = Qt.MouseButton.NoButton
        self._event_positive = True
        self._item: QGraphicsPathItem | None = None
        self._footprint: QGraphicsEllipseItem | None = None

    def width(self) -> float:
        return self.host.stroke_width

    def color(self) -> QColor:
        return QColor(40, 220, 90, 170) if self._event_positive else QColor(235, 60, 60, 170)

    def press(self, point: QPointF, event: QMouseEvent) -> None:
        if event.button() not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            return
        self._button = event.button()
        self._event_positive = _polarity(self.host, event)
        self._points = [self._clamp(point)]
        self._item = QGraphicsPathItem()
        self._item.setPen(QPen(self.color(), self.width(), Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                               Qt.PenJoinStyle.RoundJoin))
        self._add_preview(self._item)
        self._redraw()

    def move(self, point: QPointF, event: QMouseEvent) -> None:
        self._show_footprint(point)
        if self._item is None:
            return
        p = self._clamp(point)
        if self._points and abs(p[0] - self._points[-1][0]) + abs(p[1] - self._points[-1][1]) < 0.5:
            return
        self._points.append(p)
        self._redraw()

    def _show_footprint(self, point: QPointF) -> None:
        """A circle the size of the stroke under the pointer, so the width is visible before painting."""
        r = self.width() / 2
        if self._footprint is None:
            self._footprint = QGraphicsEllipseItem()
            self._footprint.setPen(_pen(QColor(255, 255, 255, 200), 1, Qt.PenStyle.DashLine))
            self._footprint.setZValue(8)
            self.canvas.scene().addItem(self._footprint)
        self._footprint.setRect(point.x() - r, point.y() - r, 2 * r, 2 * r)

    def deactivate(self) -> None:
        super().deactivate()
        if self._footprint is not None and self._footprint.scene() is not None:
            self._footprint.scene().removeItem(self._footprint)
        self._footprint = None

    def release(self, point: QPointF, event: QMouseEvent) -> None:
        if self._item is None or event.button() != self._button:
            return
        points, positive = list(self._points), self._event_positive
        self.cancel()
        if points:
            self.finished(points, positive)

    def _redraw(self) -> None:
        path = QPainterPath()
        path.moveTo(*self._points[0])
        for x, y in self._points[1:]:
            path.lineTo(x, y)
        if len(self._points) == 1:
            path.lineTo(self._points[0][0] + 0.01, self._points[0][1])
        self._item.setPath(path)

    def finished(self, points: list[tuple[float, float]], positive: bool) -> None:
        raise NotImplementedError

    def cancel(self) -> None:
        self._points = []
        self._item = None
        self._button = Qt.MouseButton.NoButton
        super().cancel()


class StrokeTool(_DragTool):
    """A scribble prompt painted with the stroke width (positive or negative)."""

    name, title = "stroke", "Scribble prompt"
    hint = "paint over the object (right button: over what is not it); width Ctrl+[ / Ctrl+]"

    def finished(self, points: list[tuple[float, float]], positive: bool) -> None:
        self.host.add_prompt(StrokePrompt(tuple(points), float(self.width()), positive))
