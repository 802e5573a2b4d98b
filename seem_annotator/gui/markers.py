"""Scene items drawn over the image: label chips on annotations and prompt markers (clicks, boxes,
polygons, strokes). Chips and click dots keep their on-screen size at any zoom."""

from __future__ import annotations

from html import escape

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainterPath, QPen
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsPathItem,
    QGraphicsRectItem,
    QGraphicsTextItem,
)

from seem_annotator.core import palette
from seem_annotator.core.prompts import BoxPrompt, PointPrompt, PolygonPrompt, Prompt, StrokePrompt

POSITIVE_COLOR = QColor(40, 220, 90)
NEGATIVE_COLOR = QColor(235, 60, 60)


def label_tag(view, scale: float) -> QGraphicsTextItem | None:
    """The label's name on a chip of its colour at the top of the mask (constant size on screen)."""
    rows = np.flatnonzero(view.mask.any(axis=1))
    if not view.label or not len(rows):
        return None
    top = int(rows[0])
    cols = np.flatnonzero(view.mask[top])
    r, g, b = view.color
    text = "rgb({},{},{})".format(*palette.contrast_color(view.color))
    item = QGraphicsTextItem()
    item.setHtml(f'<span style="background-color: rgb({r},{g},{b}); color: {text};">&nbsp;{escape(view.label)}&nbsp;</span>')
    item.setPos(float(cols[0]) * scale, top * scale)
    item.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
    item.setZValue(5)
    return item


def _dot(x: float, y: float, color: QColor, radius: float = 5.0) -> QGraphicsEllipseItem:
    item = QGraphicsEllipseItem(-radius, -radius, 2 * radius, 2 * radius)
    item.setPos(x, y)
    item.setBrush(QBrush(color))
    item.setPen(QPen(QColor(255, 255, 255), 1.5))
    # Markers keep their on-screen size whatever the zoom, like cursors.
    item.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations, True)
    item.setZValue(6)
    return item


def prompt_marker(prompt: Prompt) -> list[QGraphicsItem]:
    if isinstance(prompt, PointPrompt):
        return [_dot(prompt.x, prompt.y, POSITIVE_COLOR if prompt.positive else NEGATIVE_COLOR)]
    if isinstance(prompt, BoxPrompt):
        box = prompt.normalized()
        item = QGraphicsRectItem(QRectF(box.x0, box.y0, box.x1 - box.x0, box.y1 - box.y0))
        pen = QPen(POSITIVE_COLOR, 2)
        pen.setCosmetic(True)
        item.setPen(pen)
        item.setZValue(6)
        return [item]
    if isinstance(prompt, (PolygonPrompt, StrokePrompt)):
        path = QPainterPath()
        if not prompt.points:
            return []
        path.moveTo(*prompt.points[0])
        for x, y in prompt.points[1:]:
            path.lineTo(x, y)
        color = QColor(POSITIVE_COLOR if prompt.positive else NEGATIVE_COLOR)
        item = QGraphicsPathItem(path)
        if isinstance(prompt, PolygonPrompt):
            path.closeSubpath()
            item.setPath(path)
            pen = QPen(color, 2)
            pen.setCosmetic(True)
            fill = QColor(color)
            fill.setAlpha(40)
            item.setBrush(QBrush(fill))
        else:
            color.setAlpha(170)
            pen = QPen(color, prompt.width, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                       Qt.PenJoinStyle.RoundJoin)  # drawn at its real width in image pixels
        item.setPen(pen)
        item.setZValue(6)
        return [item]
    return []  # text, voice and referring prompts have no place on this image
