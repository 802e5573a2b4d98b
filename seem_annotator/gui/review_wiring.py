"""Review mode and auto-annotation in the window: the Review dock, the "to review" count in the
status bar, the image list's review states, and the run dialog (one small object the window owns)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from seem_annotator.gui.proposal_panel import ProposalPanel
from seem_annotator.gui.proposal_review import ProposalReview


class ReviewUi:
    def __init__(self, window: Any) -> None:
        self.window = window
        self.review = ProposalReview(window)
        self.panel = ProposalPanel(self.review, window)
        self.dock = window._dock("Review", self.panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.count = QLabel("")
        self.count.setObjectName("status_review")
        self.count.setToolTip("Proposals from auto-annotation runs waiting for review (Ctrl+P reviews them)")
        window.statusBar().addPermanentWidget(self.count)
        self.dialog: Any = None
        self.panel.run_button.clicked.connect(self.auto_annotate)
        self.review.changed.connect(self._update_counts)

    def connect(self, ctl: Any) -> None:
        """A new project's controller: the review follows its image and its edits."""
        ctl.image_changed.connect(self.review.refresh)
        ctl.annotations_changed.connect(self.proposals_changed)
        if self.review.active:
            ctl.seed_object = self.review.seed_object
        self.proposals_changed()

    def proposals_changed(self) -> None:
        """Something may have added, accepted or rejected proposals: counts, list, states, view."""
        if self.review.active:
            self.review.refresh()
        self.panel.refresh()
        self._update_counts()

    def _update_counts(self) -> None:
        window = self.window
        if window.project is None:
            self.count.setText("")
            return
        left = window.project.pending_proposal_count()
        self.count.setText(f"to review: {left}" if left else "")
        # "review" is the state of an image with pending proposals (core.runs.review_states).
        window.images_panel.set_review_ids(set(window.project.images_with_pending_proposals()))

    def auto_annotate(self) -> None:
        """Open (or raise) the run dialog."""
        window = self.window
        if window.project is None:
            window.status.message("Open a folder first.")
            return
        from seem_annotator.gui.annotate_dialog import AnnotateDialog

        if self.dialog is None or self.dialog.window is not window:
            self.dialog = AnnotateDialog(window)
        self.dialog.show()
        self.dialog.raise_()

    def close(self) -> None:
        """The project is closing: stop reviewing, and let a run finish its current image first."""
        self.review.stop()
        if self.dialog is not None:
            if self.dialog.running:
                self.dialog.cancel()
                self.dialog._thread.join(timeout=60)
            self.dialog.close()
            self.dialog = None
