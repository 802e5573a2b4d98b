"""The image list dock: thumbnails and names with a status dot, filter by status, search by name.

Thumbnails are decoded on a background thread (QImage is safe off the GUI thread, QPixmap is not)
into a plain queue that a GUI-thread timer drains: the thread never touches a Qt object that the
window may already have destroyed, and a folder of thousands of photographs opens at once.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from seem_annotator.core.records import ImageRecord
from seem_annotator.gui.overlays import rgb_to_qimage

THUMB = 64
STATUS_COLORS = {"untouched": QColor(150, 150, 150), "in_progress": QColor(240, 160, 30),
                 "review": QColor(150, 90, 230),
                 "done": QColor(50, 190, 80), "unreadable": QColor(220, 50, 50)}
FILTERS = (("All", None), ("Untouched", "untouched"), ("To review", "review"), ("In progress", "in_progress"),
           ("Done", "done"),
           ("Unreadable", "unreadable"))


def status_of(image: ImageRecord, review_ids: set[int] | frozenset[int] = frozenset()) -> str:
    """The dot and filter state: unreadable, done, review (proposals waiting), or the image's own."""
    if not image.readable:
        return "unreadable"
    if image.status != "done" and image.id in review_ids:
        return "review"
    return image.status or "untouched"


def _icon(thumb: QImage | None, status: str) -> QIcon:
    pixmap = QPixmap(THUMB, THUMB)
    pixmap.fill(QColor(0, 0, 0, 0))
    painter = QPainter(pixmap)
    if thumb is not None and not thumb.isNull():
        scaled = thumb.scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                              Qt.TransformationMode.SmoothTransformation)
        painter.drawImage((THUMB - scaled.width()) // 2, (THUMB - scaled.height()) // 2, scaled)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QColor(255, 255, 255))
    painter.setBrush(STATUS_COLORS.get(status, STATUS_COLORS["untouched"]))
    painter.drawEllipse(THUMB - 16, THUMB - 16, 13, 13)
    painter.end()
    return QIcon(pixmap)


class ImageListPanel(QWidget):
    """List of the project's images; emits `image_chosen(image_id)`."""

    image_chosen = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._review_ids: set[int] = set()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        row = QHBoxLayout()
        self.search = QLineEdit(self)
        self.search.setPlaceholderText("Search names…")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._apply_filter)
        self.filter = QComboBox(self)
        for text, _value in FILTERS:
            self.filter.addItem(text)
        self.filter.currentIndexChanged.connect(self._apply_filter)
        row.addWidget(self.search, 1)
        row.addWidget(self.filter)
        layout.addLayout(row)
        self.list = QListWidget(self)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setUniformItemSizes(True)
        # Long names elide in the middle: frames of a sequence differ only at the end of theirs.
        self.list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        # Up/Down (or a click) in the list opens the image; select() moves it without a signal.
        self.list.currentItemChanged.connect(lambda item, _previous: item is not None and self._activated(item))
        layout.addWidget(self.list)
        self._items: dict[int, QListWidgetItem] = {}
        self._records: dict[int, ImageRecord] = {}
        self._thumbs: dict[int, QImage] = {}
        self._generation = 0
        self._thumb_queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thumb_timer = QTimer(self)
        self._thumb_timer.setInterval(60)
        self._thumb_timer.timeout.connect(self._drain_thumbs)

    # ------------------------------------------------------------------ content
    def set_images(self, images: list[ImageRecord], root: Path) -> None:
        self._generation += 1
        self.list.blockSignals(True)  # filling the list is not the user choosing an image
        self.list.clear()
        self._items = {}
        self._records = {}
        self._thumbs = {}
        for image in images:
            item = QListWidgetItem(_icon(None, status_of(image, self._review_ids)), image.file_name)
            item.setData(Qt.ItemDataRole.UserRole, image.id)
            item.setToolTip(self._tooltip(image))
            self.list.addItem(item)
            self._items[image.id] = item
            self._records[image.id] = image
        self.list.blockSignals(False)
        self._apply_filter()
        self._load_thumbs([(im.id, root / im.file_name) for im in images if im.readable], self._generation)

    def update_image(self, image: ImageRecord) -> None:
        """Refresh one image's status (after an accept, undo, done toggle ...)."""
        item = self._items.get(image.id)
        if item is None:
            return
        self._records[image.id] = image
        item.setIcon(_icon(self._thumbs.get(image.id), status_of(image, self._review_ids)))
        item.setToolTip(self._tooltip(image))
        self._apply_filter()

    def _tooltip(self, image: ImageRecord) -> str:
        state = status_of(image, self._review_ids).replace("_", " ")
        text = f"{image.file_name}\n{image.width}x{image.height}\n{state}"
        return text + (f"\n{image.error}" if image.error else "")

    def _load_thumbs(self, todo: list[tuple[int, Path]], generation: int) -> None:
        from seem_annotator.core.images import load_for_model

        out = self._thumb_queue
        current = lambda: self._generation  # noqa: E731 - read by the thread, a plain int attribute

        def run() -> None:
            for image_id, path in todo:
                try:
                    if generation != current():
                        return  # another folder was opened meanwhile
                    proxy = load_for_model(path, max_side=THUMB * 2)
                except Exception:  # unreadable files keep their status dot; the project reports why
                    continue
                out.put((generation, image_id, rgb_to_qimage(proxy.pixels)))
            out.put((generation, None, None))

        if todo:
            self._thumb_timer.start()
            threading.Thread(target=run, name="thumbnails", daemon=True).start()

    def _drain_thumbs(self) -> None:
        while True:
            try:
                generation, image_id, image = self._thumb_queue.get_nowait()
            except queue.Empty:
                return
            if generation != self._generation:
                continue
            if image_id is None:
                self._thumb_timer.stop()
                continue
            self._on_thumb(image_id, image)

    def set_review_ids(self, image_ids: set[int]) -> None:
        """Images with proposals waiting for review (their dot and the "To review" filter)."""
        changed = image_ids ^ self._review_ids
        self._review_ids = set(image_ids)
        for image_id in changed & self._records.keys():
            record = self._records[image_id]
            self._items[image_id].setIcon(_icon(self._thumbs.get(image_id), status_of(record, self._review_ids)))
            self._items[image_id].setToolTip(self._tooltip(record))
        if changed:
            self._apply_filter()

    def _on_thumb(self, image_id: int, image: QImage) -> None:
        record = self._records.get(image_id)
        if record is None:
            return
        self._thumbs[image_id] = image
        self._items[image_id].setIcon(_icon(image, status_of(record, self._review_ids)))

    # ------------------------------------------------------------------ navigation
    def _apply_filter(self) -> None:
        wanted = FILTERS[self.filter.currentIndex()][1]
        needle = self.search.text().strip().lower()
        for image_id, item in self._items.items():
            record = self._records[image_id]
            state = status_of(record, self._review_ids)
            visible = (wanted is None or state == wanted) and needle in record.file_name.lower()
            item.setHidden(not visible)

    def select(self, image_id: int) -> None:
        item = self._items.get(image_id)
        if item is not None:
            self.list.blockSignals(True)
            self.list.setCurrentItem(item)
            self.list.blockSignals(False)
            self.list.scrollToItem(item)

    def _activated(self, item: QListWidgetItem) -> None:
        self.image_chosen.emit(int(item.data(Qt.ItemDataRole.UserRole)))

    def visible_ids(self) -> list[int]:
        return [int(self.list.item(i).data(Qt.ItemDataRole.UserRole)) for i in range(self.list.count())
                if not self.list.item(i).isHidden()]

    def neighbour(self, image_id: int | None, step: int) -> int | None:
        """The visible image `step` places away from `image_id` (clamped), for A/D navigation."""
        ids = self.visible_ids()
        if not ids:
            return None
        if image_id not in ids:
            return ids[0] if step > 0 else ids[-1]
        index = max(0, min(len(ids) - 1, ids.index(image_id) + step))
        return ids[index]
