"""Editing tools: brush and eraser, selection, polygon vertex editing, and marking a reference
region; plus `TOOL_CLASSES`, every tool in toolbar order (prompt tools live in tools.py)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QBrush, QColor, QMouseEvent, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsItem, QGraphicsPathItem

from seem_annotator.gui import overlays
from seem_annotator.gui.tools import (
    BoxTool,
    ManualPolygonTool,
    PointTool,
    PolygonTool,
    StrokeTool,
    Tool,
    ToolHost,
    _DragTool,
    _pen,
)


class BrushTool(_DragTool):
    """Paint onto the candidate (or the selected annotation); right button erases."""

    name, title = "brush", "Brush"
    hint = "paint onto the mask or the selected object (right button erases); width Ctrl+[ / Ctrl+]"
    erase = False

    def width(self) -> float:
        return self.host.brush_width

    def color(self) -> QColor:
        erasing = self.erase == self._event_positive
        return QColor(255, 80, 80, 150) if erasing else QColor(255, 255, 255, 150)

    def finished(self, points: list[tuple[float, float]], positive: bool) -> None:
        # For the eraser the "positive" gesture erases; the opposite button paints back.
        self.host.brush_edit(points, float(self.width()), erase=(self.erase == positive))


class EraserTool(BrushTool):
    name, title = "eraser", "Eraser"
    hint = "erase from the mask or the selected object (right button paints back); width Ctrl+[ / Ctrl+]"
    erase = True


class SelectTool(Tool):
    """Click an accepted annotation to select it (for relabel, delete, brush, vertex editing);
    Shift+click adds to or removes from the selection (merge, subtract)."""

    name, title = "select", "Select"
    hint = "click an object to select it; Shift+click adds it to or removes it from the selection"
    cursor = Qt.CursorShape.ArrowCursor

    def press(self, point: QPointF, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            add = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
            self.host.select_annotation(self.canvas.annotation_at(point), add)


class ReferringTool(_DragTool):
    """Lasso a region on this image to use as a referring prompt on other images."""

    name, title = "referring", "Mark reference region"
    hint = "draw around a region to use it as the prompt on other images (needs SEEM)"

    def width(self) -> float:
        return 2.0

    def color(self) -> QColor:
        return QColor(255, 160, 0, 220)

    def _redraw(self) -> None:
        super()._redraw()
        if self._item is not None:
            self._item.setPen(_pen(self.color(), 2))
            fill = QColor(255, 160, 0, 50)
            self._item.setBrush(QBrush(fill))

    def finished(self, points: list[tuple[float, float]], positive: bool) -> None:
        if len(points) < 3:
            return
        mask = overlays.rasterize_polygons([np.array(points)], [], self.canvas.full_size)
        if mask.any():
            self.host.set_reference_region(mask)


class VertexTool(Tool):
    """Drag the vertices of the selected annotation's (or the candidate's) polygons; holes stay holes.

    Releasing a handle rasterises the edited rings back into a mask and hands it to the host as one
    undoable edit. Shift+click on a vertex removes it.
    """

    name, title = "vertices", "Edit polygon vertices"
    hint = "drag a corner of the selected object's outline; Shift+click a corner removes it"
    cursor = Qt.CursorShape.ArrowCursor
    HANDLE_PX = 5.0

    def __init__(self, canvas, host: ToolHost) -> None:
        super().__init__(canvas, host)
        self._rings: list[np.ndarray] = []
        self._is_hole: list[bool] = []
        self._handles: list[tuple[int, int, QGraphicsEllipseItem]] = []
        self._outline: QGraphicsPathItem | None = None
        self._drag: tuple[int, int] | None = None

    def activate(self) -> None:
        super().activate()
        self.reload()

    def reload(self) -> None:
        """(Re)build the handles from the host's current target mask."""
        super().cancel()
        self._handles = []
        self._drag = None
        mask = self.host.vertex_edit_target()
        if mask is None:
            self._rings, self._is_hole = [], []
            return
        outers, holes = overlays.mask_polygons(mask, epsilon=max(1.0, 0.004 * max(mask.shape)))
        self._rings = outers + holes
        self._is_hole = [False] * len(outers) + [True] * len(holes)
        self._outline = QGraphicsPathItem()
        self._outline.setPen(_pen(QColor(255, 210, 0), 2))
        self._add_preview(self._outline)
        for r, ring in enumerate(self._rings):
            for v, (x, y) in enumerate(ring):
                handle = QGraphicsEllipseItem(-self.HANDLE_PX, -self.HANDLE_PX, 2 * self.HANDLE_PX, 2 * self.HANDLE_PX)
                handle.setPos(x, y)
                handle.setBrush(QBrush(QColor(255, 210, 0)))
                handle.setPen(QPen(QColor(20, 20, 20), 1))
                handle.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
                self._add_preview(handle)
                self._handles.append((r, v, handle))
        self._redraw_outline()

    def _redraw_outline(self) -> None:
        if self._outline is None:
            return
        path = QPainterPath()
        for ring in self._rings:
            if len(ring):
                path.moveTo(*ring[0])
                for x, y in ring[1:]:
                    path.lineTo(x, y)
                path.closeSubpath()
        self._outline.setPath(path)

    def _handle_at(self, point: QPointF) -> tuple[int, int] | None:
        for r, v, handle in self._handles:
            if self._screen_distance(handle.pos(), point) <= self.HANDLE_PX + 3:
                return r, v
        return None

    def press(self, point: QPointF, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        hit = self._handle_at(point)
        if hit is None:
            return
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            r, v = hit
            if len(self._rings[r]) > 3:
                self._rings[r] = np.delete(self._rings[r], v, axis=0)
                self._commit()
            return
        self._drag = hit

    def move(self, point: QPointF, event: QMouseEvent) -> None:
        if self._drag is None:
            return
        r, v = self._drag
        self._rings[r][v] = self._clamp(point)
        for hr, hv, handle in self._handles:
            if (hr, hv) == (r, v):
                handle.setPos(QPointF(*self._rings[r][v]))
        self._redraw_outline()

    def release(self, point: QPointF, event: QMouseEvent) -> None:
        if self._drag is not None:
            self.move(point, event)  # the vertex lands where the button was let go
            self._drag = None
            self._commit()

    def _commit(self) -> None:
        outers = [ring for ring, hole in zip(self._rings, self._is_hole) if not hole]
        holes = [ring for ring, hole in zip(self._rings, self._is_hole) if hole]
        mask = overlays.rasterize_polygons(outers, holes, self.canvas.full_size)
        self.host.vertex_edit(mask)
        self.reload()

    def busy(self) -> bool:
        return self._drag is not None

    def cancel(self) -> None:
        if self._drag is not None:  # Esc mid-drag: put the vertices back as they were
            self._drag = None
            self.reload()

    def deactivate(self) -> None:
        self._drag = None
        super().cancel()
        self._handles = []
        self._rings = []


TOOL_CLASSES: tuple[type[Tool], ...] = (PointTool, BoxTool, PolygonTool, StrokeTool, BrushTool, EraserTool,
                                         ManualPolygonTool, VertexTool, SelectTool, ReferringTool)
