"""The Review dock: what is left to review, the score threshold, the proposals of this image, and
the buttons for what the review keys do (see gui/proposal_review.py)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from seem_annotator.gui.proposal_review import SCOPES, ProposalReview


class ProposalPanel(QWidget):
    """A view of `ProposalReview`: refreshed on its `changed` signal, actions go back to it."""

    def __init__(self, review: ProposalReview, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.review = review
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.count = QLabel("", self)
        self.count.setObjectName("review_count")
        layout.addWidget(self.count)

        row = QHBoxLayout()
        self.toggle = QPushButton("Start review", self)
        self.toggle.setToolTip("Step through the proposals (Ctrl+P)")
        self.toggle.clicked.connect(self._toggle)
        row.addWidget(self.toggle)
        self.run_button = QPushButton("Auto-annotate…", self)
        self.run_button.setToolTip("Pre-label images with SEEM (Ctrl+Shift+A)")
        row.addWidget(self.run_button)
        layout.addLayout(row)

        self.scope = QComboBox(self)
        for key, text in SCOPES.items():
            self.scope.addItem(text, key)
        self.scope.currentIndexChanged.connect(self._scope_changed)
        layout.addWidget(self.scope)
        self.label_choice = QComboBox(self)
        self.label_choice.setVisible(False)
        self.label_choice.currentIndexChanged.connect(self._scope_changed)
        layout.addWidget(self.label_choice)

        row = QHBoxLayout()
        row.addWidget(QLabel("min score", self))
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(0, 100)
        self.slider.setToolTip("Hide proposals scoring below this; Shift+Enter accepts all at or above it")
        self.slider.valueChanged.connect(lambda v: (self.threshold_label.setText(f"{v / 100:.2f}"),
                                                    review.set_threshold(v / 100)))
        row.addWidget(self.slider, 1)
        self.threshold_label = QLabel("0.00", self)
        row.addWidget(self.threshold_label)
        layout.addLayout(row)

        self.list = QListWidget(self)
        self.list.setToolTip("Proposals on this image above the threshold; click one to review it")
        self.list.itemClicked.connect(self._chosen)
        layout.addWidget(self.list, 1)

        row = QHBoxLayout()
        for text, tip, slot in (("Accept", "Enter", review.accept), ("Reject", "X or Delete", review.reject),
                                ("Accept all ≥ min", "Shift+Enter", review.accept_all_above)):
            button = QPushButton(text, self)
            button.setToolTip(tip)
            button.clicked.connect(lambda _checked=False, s=slot: s())
            row.addWidget(button)
        layout.addLayout(row)
        review.changed.connect(self.refresh)

    def _toggle(self) -> None:
        if self.review.active:
            self.review.stop()
        else:
            self.review.start(self.scope.currentData(), self.label_choice.currentText() or None)

    def _scope_changed(self) -> None:
        scope = self.scope.currentData()
        self.label_choice.setVisible(scope == "label")
        if self.review.active:
            self.review.start(scope, self.label_choice.currentText() or None)

    def _chosen(self, item: QListWidgetItem) -> None:
        wanted = int(item.data(Qt.ItemDataRole.UserRole))
        ids = [p.id for p in self.review.queue]
        if not self.review.active:
            self.review.start("image")
            ids = [p.id for p in self.review.queue]
        if wanted in ids:
            self.review.step(ids.index(wanted) - self.review.index)

    def refresh(self) -> None:
        """Counts, the label choice and this image's proposals (cheap: one query each)."""
        review, window = self.review, self.review.window
        project, ctl = window.project, window.controller
        self.toggle.setText("Stop review" if review.active else "Start review")
        if project is None:
            self.count.setText("No project open.")
            self.list.clear()
            return
        left = review.pending_count()
        self.count.setText(f"{left} proposal{'s' if left != 1 else ''} to review in the project")
        names = project.pending_proposal_labels()
        if names != [self.label_choice.itemText(i) for i in range(self.label_choice.count())]:
            self.label_choice.blockSignals(True)
            current = self.label_choice.currentText()
            self.label_choice.clear()
            self.label_choice.addItems(names)
            if current in names:
                self.label_choice.setCurrentText(current)
            self.label_choice.blockSignals(False)
        self.list.clear()
        shown = review.current()
        on_image = [] if ctl is None or ctl.image_id is None else project.proposals(ctl.image_id)
        for proposal in on_image:
            if proposal.score < review.threshold:
                continue
            item = QListWidgetItem(f"{proposal.label}  {proposal.score:.2f}  ({proposal.mode})")
            item.setData(Qt.ItemDataRole.UserRole, proposal.id)
            self.list.addItem(item)
            if shown is not None and shown.id == proposal.id:
                self.list.setCurrentItem(item)
