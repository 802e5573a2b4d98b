"""The image canvas: a QGraphicsView whose scene coordinates are full-resolution image pixels.

Very large images are shown through a downscaled display proxy; the proxy pixmap and the mask
overlays are scaled back up by the item transform, so every tool, prompt and mask edit works in
full-resolution pixels whatever is on screen. Mouse input goes to the active tool (tools.py);
the middle button (or Ctrl+left drag) pans, the wheel zooms around the cursor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QImage,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
)

from seem_annotator.core import palette
from seem_annotator.core.prompts import Prompt
from seem_annotator.gui import markers, overlays

MIN_ZOOM, MAX_ZOOM = 0.02, 64.0
CANDIDATE_COLOR = (0, 200, 255)


@dataclass
class AnnotationView:
    """What the canvas needs to draw one accepted annotation."""

    id: int
    mask: np.ndarray  # bool, display size
    color: tuple[int, int, int]
    label: str = ""


class ImageCanvas(QGraphicsView):
    """Image + annotation overlays + candidate + prompt markers + tool previews."""

    hovered = Signal(object)  # annotation id or None
    cursor_moved = Signal(float, float)  # image coordinates
    zoom_changed = Signal(float)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setBackgroundBrush(QBrush(QColor(38, 38, 42)))
        self.setMouseTracking(True)
        self.setAcceptDrops(False)  # the main window takes folder drops
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.full_size: tuple[int, int] = (0, 0)  # (H, W)
        self.display_size: tuple[int, int] = (0, 0)
        self.placeholder = ""  # what the empty canvas says (set_placeholder)
        self.opacity = 0.45
        self.show_outlines = True
        self.tool = None
        self._views: list[AnnotationView] = []
        self._paths: dict[int, QPainterPath] = {}
        self._outlined: dict[int, tuple[np.ndarray, QPainterPath, float]] = {}  # id -> (mask, path, scale)
        self._outline_items: list[QGraphicsItem] = []
        self._marker_items: list[QGraphicsItem] = []
        self._hover_id: int | None = None
        self._selected_id: int | None = None
        self._panning: QPointF | None = None
        self._fitted = True
        scene = self.scene()
        self._image_item = QGraphicsPixmapItem()
        self._image_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._overlay_item = QGraphicsPixmapItem()
        self._overlay_item.setZValue(1)
        self._candidate_item = QGraphicsPixmapItem()
        self._candidate_item.setZValue(4)
        self._candidate_outline = QGraphicsPathItem()
        self._candidate_outline.setZValue(4.5)
        self._highlight_item = QGraphicsPathItem()
        self._highlight_item.setZValue(3)
        self._selected_item = QGraphicsPathItem()
        self._selected_item.setZValue(3.5)
        for item in (self._image_item, self._overlay_item, self._candidate_item, self._candidate_outline,
                     self._highlight_item, self._selected_item):
            scene.addItem(item)
        self._review_item = QGraphicsPixmapItem()
        self._review_item.setZValue(4)
        scene.addItem(self._review_item)
        self._candidate_mask: np.ndarray | None = None
        self._candidate_color = CANDIDATE_COLOR

    # ----------------------------------------------------------------- image and geometry
    @property
    def display_scale(self) -> float:
        """Image pixels per display-proxy pixel (1.0 unless the image was downscaled for display)."""
        if not self.display_size[0]:
            return 1.0
        return self.full_size[0] / self.display_size[0]

    def set_placeholder(self, text: str) -> None:
        """What the empty canvas says (why no image is shown); empty for nothing."""
        self.placeholder = text
        self.viewport().update()

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self.placeholder and not self.display_size[0]:
            painter = QPainter(self.viewport())
            painter.setPen(QColor(220, 220, 220))
            area = self.viewport().rect().adjusted(40, 40, -40, -40)
            painter.drawText(area, int(Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap), self.placeholder)
            painter.end()

    def set_image(self, image: QImage | None, full_size: tuple[int, int]) -> None:
        """Show an image (its display proxy) whose oriented full resolution is full_size (H, W)."""
        self.clear_layers()
        if image is None or image.isNull():
            self._image_item.setPixmap(QPixmap())
            self.full_size = (0, 0)
            self.display_size = (0, 0)
            return
        self.full_size = (int(full_size[0]), int(full_size[1]))
        self.display_size = (image.height(), image.width())
        self._image_item.setPixmap(QPixmap.fromImage(image))
        scale = self.display_scale
        for item in (self._image_item, self._overlay_item, self._candidate_item, self._review_item):
            item.setScale(scale)
        self.scene().setSceneRect(QRectF(0, 0, self.full_size[1], self.full_size[0]))
        self.fit_to_window()

    def clear_layers(self) -> None:
        self._views = []
        self._paths = {}
        self._outlined = {}
        self._overlay_item.setPixmap(QPixmap())
        for item in self._outline_items:
            self.scene().removeItem(item)
        self._outline_items = []
        self._hover_id = None
        self._selected_id = None
        self._highlight_item.setPath(QPainterPath())
        self._selected_item.setPath(QPainterPath())
        self.set_candidate(None)
        self.set_review([])
        self.set_prompts(())

    def map_to_image(self, view_pos) -> QPointF:
        return self.mapToScene(view_pos.toPoint() if hasattr(view_pos, "toPoint") else view_pos)

    def contains_image_point(self, point: QPointF) -> bool:
        return 0 <= point.x() < self.full_size[1] and 0 <= point.y() < self.full_size[0]

    # ----------------------------------------------------------------- zoom and pan
    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, factor: float) -> None:
        factor = max(MIN_ZOOM, min(MAX_ZOOM, factor))
        current = self.zoom()
        if current > 0:
            self.scale(factor / current, factor / current)
        # Past 2x the pixels should stay crisp for precise clicks; below, smooth for a clean preview.
        mode = (Qt.TransformationMode.FastTransformation if factor * self.display_scale >= 2
                else Qt.TransformationMode.SmoothTransformation)
        self._image_item.setTransformationMode(mode)
        self.zoom_changed.emit(self.zoom())

    def zoom_in(self) -> None:
        self._fitted = False
        self.set_zoom(self.zoom() * 1.25)

    def zoom_out(self) -> None:
        self._fitted = False
        self.set_zoom(self.zoom() / 1.25)

    def fit_to_window(self) -> None:
        if not self.full_size[0]:
            return
        self._fitted = True
        self.fitInView(self.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)
        self.set_zoom(self.zoom())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fitted:
            self.fit_to_window()

    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta().y() or event.pixelDelta().y()
        if not delta:
            return
        self._fitted = False
        self.set_zoom(self.zoom() * (1.0015 ** delta))  # proportional to wheel travel: smooth on trackpads
        event.accept()

    # ----------------------------------------------------------------- layers
    def set_opacity(self, opacity: float) -> None:
        self.opacity = float(opacity)
        self._rebuild_overlay()
        self._rebuild_candidate()

    def set_annotations(self, views: list[AnnotationView]) -> None:
        """Accepted annotations, lowest z-order first."""
        self._views = list(views)
        scale = self.display_scale
        # An unchanged annotation keeps its mask object (the view caches them): reuse its outline.
        outlined = {}
        for v in self._views:
            mask, path, at = self._outlined.get(v.id, (None, None, None))
            if mask is not v.mask or at != scale:
                path = overlays.outline_path(v.mask, scale)
            outlined[v.id] = (v.mask, path, scale)
        self._outlined = outlined
        self._paths = {ann_id: path for ann_id, (_mask, path, _scale) in outlined.items()}
        self._rebuild_overlay()
        for item in self._outline_items:
            self.scene().removeItem(item)
        self._outline_items = []
        if self.show_outlines:
            for view in self._views:
                tag = markers.label_tag(view, scale)
                if tag is not None:
                    self.scene().addItem(tag)
                    self._outline_items.append(tag)
                # A halo in black or white under the label's colour: the outline shows on any
                # background, an orange label on an orange suit included.
                for color, width, z in ((palette.contrast_color(view.color), 3.5, 1.9), (view.color, 1.5, 2.0)):
                    item = QGraphicsPathItem(self._paths[view.id])
                    pen = QPen(QColor(*color), width)
                    pen.setCosmetic(True)  # constant on-screen width at any zoom
                    item.setPen(pen)
                    item.setZValue(z)
                    self.scene().addItem(item)
                    self._outline_items.append(item)
        if self._hover_id not in self._paths:
            self._set_hover(None)
        self.set_selected(self._selected_id if self._selected_id in self._paths else None)

    def _paint_layer(self, item: QGraphicsPixmapItem, layers: list, opacity: float) -> None:
        """Tint `layers` into `item`, covering only their bounding box (placed at its offset)."""
        crop = overlays.compose_crop(layers, opacity) if layers and self.display_size[0] else None
        if crop is None:
            item.setPixmap(QPixmap())
            return
        rgba, x0, y0 = crop
        item.setPixmap(QPixmap.fromImage(overlays.rgba_to_qimage(rgba)))
        item.setPos(x0 * self.display_scale, y0 * self.display_scale)

    def _rebuild_overlay(self) -> None:
        self._paint_layer(self._overlay_item, [(v.mask, v.color) for v in self._views], self.opacity)

    def set_candidate(self, mask: np.ndarray | None, color: tuple[int, int, int] | None = None) -> None:
        """The model's current proposal (display-size bool mask), drawn above annotations."""
        self._candidate_mask = mask
        if color is not None:
            self._candidate_color = color
        self._rebuild_candidate()

    def _rebuild_candidate(self) -> None:
        mask = self._candidate_mask
        if mask is None or not self.display_size[0]:
            self._candidate_item.setPixmap(QPixmap())
            self._candidate_outline.setPath(QPainterPath())
            return
        self._paint_layer(self._candidate_item, [(mask, self._candidate_color)], min(1.0, self.opacity + 0.15))
        pen = QPen(QColor(255, 255, 255), 2, Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        self._candidate_outline.setPen(pen)
        self._candidate_outline.setPath(overlays.outline_path(mask, self.display_scale))

    def set_review(self, layers: list[tuple[np.ndarray, tuple[int, int, int]]]) -> None:
        """Segment-everything candidates under review: (display-size mask, colour) pairs."""
        self._paint_layer(self._review_item, list(layers), max(0.35, self.opacity))

    def has_candidate(self) -> bool:
        return self._candidate_mask is not None

    def set_prompts(self, prompts: tuple[Prompt, ...] | list[Prompt]) -> None:
        """Markers for the prompts of the object being segmented (constant size on screen)."""
        scene = self.scene()
        for item in self._marker_items:
            scene.removeItem(item)
        self._marker_items = []
        for prompt in prompts:
            for item in markers.prompt_marker(prompt):
                scene.addItem(item)
                self._marker_items.append(item)

    # ----------------------------------------------------------------- hover and selection
    def annotation_at(self, point: QPointF) -> int | None:
        """Id of the topmost annotation under an image point, or None."""
        if not self.contains_image_point(point):
            return None
        scale = self.display_scale
        row = min(int(point.y() / scale), self.display_size[0] - 1)
        col = min(int(point.x() / scale), self.display_size[1] - 1)
        for view in reversed(self._views):
            if view.mask[row, col]:
                return view.id
        return None

    def _set_hover(self, ann_id: int | None) -> None:
        if ann_id == self._hover_id:
            return
        self._hover_id = ann_id
        if ann_id is None:
            self._highlight_item.setPath(QPainterPath())
        else:
            pen = QPen(QColor(255, 255, 255, 220), 3)
            pen.setCosmetic(True)
            self._highlight_item.setPen(pen)
            self._highlight_item.setBrush(QBrush(QColor(255, 255, 255, 50)))
            self._highlight_item.setPath(self._paths.get(ann_id, QPainterPath()))
        self.hovered.emit(ann_id)

    @property
    def hover_id(self) -> int | None:
        return self._hover_id

    def set_selected(self, ann_id: int | None) -> None:
        self._selected_id = ann_id
        if ann_id is None or ann_id not in self._paths:
            self._selected_item.setPath(QPainterPath())
            return
        pen = QPen(QColor(255, 210, 0), 2.5, Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        self._selected_item.setPen(pen)
        self._selected_item.setPath(self._paths[ann_id])

    # ----------------------------------------------------------------- mouse -> tools
    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.setFocus(Qt.FocusReason.MouseFocusReason)  # anywhere on the canvas, image or margin
        panning = event.button() == Qt.MouseButton.MiddleButton or (
            event.button() == Qt.MouseButton.LeftButton
            and event.modifiers() & Qt.KeyboardModifier.ControlModifier
            and not (self.tool is not None and self.tool.wants_ctrl)
        )
        if panning:
            self._panning = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        if self.tool is not None and self.full_size[0]:
            self.tool.press(self.mapToScene(event.position().toPoint()), event)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._panning is not None:
            delta = event.position() - self._panning
            self._panning = event.position()
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() - int(delta.x()))
            self.verticalScrollBar().setValue(self.verticalScrollBar().value() - int(delta.y()))
            event.accept()
            return
        point = self.mapToScene(event.position().toPoint())
        self.cursor_moved.emit(point.x(), point.y())
        if event.buttons() == Qt.MouseButton.NoButton:
            self._set_hover(self.annotation_at(point))
        if self.tool is not None and self.full_size[0]:
            self.tool.move(point, event)
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._panning is not None:
            self._panning = None
            self.viewport().unsetCursor()
            if self.tool is not None:
                self.tool.update_cursor()
            event.accept()
            return
        if self.tool is not None and self.full_size[0]:
            self.tool.release(self.mapToScene(event.position().toPoint()), event)
        event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        if self.tool is not None and self.full_size[0]:
            self.tool.double_click(self.mapToScene(event.position().toPoint()), event)
        event.accept()

    def keyPressEvent(self, event) -> None:
        if self.tool is not None and self.tool.key(event.key()):
            event.accept()
            return
        super().keyPressEvent(event)

    def leaveEvent(self, event) -> None:
        self._set_hover(None)
        super().leaveEvent(event)
