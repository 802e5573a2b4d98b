"""Segment-everything review: every labelled candidate of the image in a checkable list, previewed on
the canvas; accept all, accept the checked ones, or discard. Nothing is accepted without the user."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from seem_annotator.core.masks import encode
from seem_annotator.engine.types import Candidate
from seem_annotator.gui.labels_panel import swatch

REVIEW_PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
                  (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40)]


def top_label(candidate: Candidate) -> str:
    return candidate.labels[0][0] if candidate.labels else "unknown"


HIGHLIGHT = (255, 255, 255)  # the selected row's region
OVERLAP = 0.1  # a region sharing more than this fraction of itself with a better one starts unchecked


def without_overlaps(masks: list) -> list[bool]:
    """Which regions, taken in order (best first), do not overlap the ones kept before them: the
    classical backend's regions come from a merge hierarchy, so a part and the whole it belongs to
    are both offered, and accepting both would label the same pixels twice."""
    kept: list[bool] = []
    taken = None
    # Fractions of areas need no full resolution: on a 12 MP photo thirty full masks would hold the
    # GUI thread for a second. A regular sample of about 250,000 pixels says the same.
    step = 1 if not masks else max(1, int((masks[0].size / 250_000) ** 0.5))
    for mask in (m[::step, ::step] for m in masks):
        area = int(mask.sum())
        shared = 0 if taken is None else int((mask & taken).sum())
        keep = area > 0 and shared <= OVERLAP * area
        kept.append(keep)
        if keep:
            taken = mask.copy() if taken is None else taken | mask
    return kept


class EverythingReview(QDialog):
    """Non-modal review of segment-everything candidates.

    `preview(list[(mask, colour)])` asks the canvas to show the checked candidates;
    `accepted(list[(rle, label, score)])` hands the chosen ones to be stored as annotations.
    """

    preview = Signal(object)
    accepted = Signal(object)

    def __init__(self, candidates: list[Candidate], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Segment everything - review")
        self.setModal(False)
        self.resize(360, 480)
        # Named candidates (SEEM): largest first, the big regions are what a person checks first.
        # Unnamed ones (the classical backend) come ranked by how object-like they are, best first:
        # sorting them by size would bury that ranking under the background's large regions.
        unnamed = all(top_label(c) == "unknown" for c in candidates)
        order = (lambda c: -float(c.score)) if unnamed else (lambda c: -int(c.mask.sum()))
        self.candidates = sorted(candidates, key=order)
        layout = QVBoxLayout(self)
        ranking = (" Unnamed regions, most object-like first; the best ones that do not overlap are checked."
                   if unnamed else "")
        checked = without_overlaps([c.mask for c in self.candidates]) if unnamed else [True] * len(self.candidates)
        header = QLabel(f"{len(self.candidates)} candidates.{ranking} Check or uncheck, then accept. Labels "
                        "can be changed afterwards.", self)
        header.setWordWrap(True)  # the dialog keeps its width; it sits over the canvas it previews on
        layout.addWidget(header)
        self.list = QListWidget(self)
        for i, cand in enumerate(self.candidates):
            color = REVIEW_PALETTE[i % len(REVIEW_PALETTE)]
            item = QListWidgetItem(swatch(color), f"{top_label(cand)}  ({cand.score:.2f}, {int(cand.mask.sum())} px)")
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if checked[i] else Qt.CheckState.Unchecked)
            item.setData(Qt.ItemDataRole.UserRole, i)
            self.list.addItem(item)
        self.list.itemChanged.connect(lambda _item: self._emit_preview())
        # The selected row's region is drawn on top in white: which region a row is, checked or not.
        self.list.currentRowChanged.connect(lambda _row: self._emit_preview())
        layout.addWidget(self.list)
        row = QHBoxLayout()
        for text, state in (("Check all", Qt.CheckState.Checked), ("Check none", Qt.CheckState.Unchecked)):
            button = QPushButton(text, self)
            button.clicked.connect(lambda _c=False, s=state: self._check_all(s))
            row.addWidget(button)
        layout.addLayout(row)
        buttons = QDialogButtonBox(self)
        self.accept_all = buttons.addButton("Accept all", QDialogButtonBox.ButtonRole.AcceptRole)
        self.accept_checked = buttons.addButton("Accept checked", QDialogButtonBox.ButtonRole.AcceptRole)
        discard = buttons.addButton("Discard", QDialogButtonBox.ButtonRole.RejectRole)
        self.accept_all.clicked.connect(lambda: self._finish(all_items=True))
        self.accept_checked.clicked.connect(lambda: self._finish(all_items=False))
        discard.clicked.connect(self.reject)
        layout.addWidget(buttons)
        self.finished.connect(lambda _r: self.preview.emit([]))

    def checked_indices(self) -> list[int]:
        return [int(self.list.item(r).data(Qt.ItemDataRole.UserRole)) for r in range(self.list.count())
                if self.list.item(r).checkState() == Qt.CheckState.Checked]

    def _check_all(self, state: Qt.CheckState) -> None:
        self.list.blockSignals(True)
        for r in range(self.list.count()):
            self.list.item(r).setCheckState(state)
        self.list.blockSignals(False)
        self._emit_preview()

    def _emit_preview(self) -> None:
        layers = [(self.candidates[i].mask, REVIEW_PALETTE[i % len(REVIEW_PALETTE)]) for i in self.checked_indices()]
        item = self.list.currentItem()
        if item is not None:
            layers.append((self.candidates[int(item.data(Qt.ItemDataRole.UserRole))].mask, HIGHLIGHT))
        self.preview.emit(layers)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self._emit_preview()

    def _finish(self, all_items: bool) -> None:
        indices = range(len(self.candidates)) if all_items else self.checked_indices()
        chosen = [(encode(self.candidates[i].mask), top_label(self.candidates[i]), float(self.candidates[i].score))
                  for i in indices]
        self.accepted.emit(chosen)
        self.accept()
