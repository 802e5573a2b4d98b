"""Review mode: step through an auto-annotation run's proposals at keyboard speed.

The review holds a queue of pending proposals (those of the current image, or across the dataset
one label at a time, or by ascending score) at or above a score threshold, and shows the current
one on the canvas. The window routes keys to it while it is active and no object is in progress:
Enter accepts, X or Delete rejects, a digit relabels, Shift+Enter accepts every proposal of the
image above the threshold, Esc leaves review mode. A click starts refining the current proposal as
the object in progress: its mask is the first round, so the model gets it as memory. Every action
is one undoable, persisted step of the core (`Project.accept_proposal` and friends).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from seem_annotator.core import masks, palette
from seem_annotator.core.runs import ProposalRecord
from seem_annotator.errors import UserError
from seem_annotator.gui.controller import PROPOSAL_ROUND, UNKNOWN

SCOPES = {"image": "This image, best first", "label": "One label across the dataset",
          "score": "Whole dataset, weakest first"}


class ProposalReview(QObject):
    """Review-mode state and actions; `changed` after every move, action or setting change."""

    changed = Signal()

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.active = False
        self.scope = "image"
        self.label: str | None = None
        self.threshold = 0.0
        self.queue: list[ProposalRecord] = []
        self.index = 0

    # ------------------------------------------------------------------ state
    @property
    def _ctl(self) -> Any:
        return self.window.controller

    def current(self) -> ProposalRecord | None:
        return self.queue[self.index] if self.active and 0 <= self.index < len(self.queue) else None

    def pending_count(self) -> int:
        project = self.window.project
        return 0 if project is None else project.pending_proposal_count()

    def wants_keys(self) -> bool:
        """Review keys apply: a proposal is shown on this image and no object is in progress."""
        ctl, proposal = self._ctl, self.current()
        return (ctl is not None and proposal is not None and proposal.image_id == ctl.image_id
                and not (ctl.session is not None and ctl.session.rounds) and not ctl.pending)

    def _build_queue(self) -> list[ProposalRecord]:
        ctl, project = self._ctl, self.window.project
        if ctl is None or project is None:
            return []
        if self.scope == "image":
            found = project.proposals(ctl.image_id) if ctl.image_id is not None else []
        elif self.scope == "label":
            found = [p for p in project.proposals() if self.label is None or p.label.casefold() == self.label.casefold()]
        else:
            found = sorted(project.proposals(), key=lambda p: (p.score, p.image_id, p.id))
        return [p for p in found if p.score >= self.threshold]

    # ------------------------------------------------------------------ moving
    def start(self, scope: str | None = None, label: str | None = None) -> None:
        if scope is not None:
            self.scope, self.label = scope, label
        project = self.window.project
        if project is not None and project.pending_proposal_count() == 0:
            # Nothing anywhere to review: say where proposals come from instead of entering a
            # mode with nothing in it (found in the app: "Stop review" with nothing to stop).
            self.window.status.message("No proposals in this project yet: Auto-annotate… (Ctrl+Shift+A) "
                                       "makes them with SEEM.")
            return
        self.active = True
        self._ctl.seed_object = self.seed_object
        self.refresh(keep_index=False)
        if not self.queue:
            self.window.status.message("No proposals to review here"
                                       + (" above the threshold." if self.threshold > 0 else "."))

    def stop(self) -> None:
        self.active = False
        self.queue = []
        if self._ctl is not None:
            self._ctl.seed_object = None
        self.window.canvas.set_review([])
        self.changed.emit()

    def set_threshold(self, threshold: float) -> None:
        self.threshold = float(threshold)
        if self.active:
            self.refresh()

    def refresh(self, keep_index: bool = True) -> None:
        """Rebuild the queue (after an action, undo, image change) and show the current proposal;
        in image scope an image with nothing left hands over to the next image that has some."""
        if not self.active:
            return
        current = self.current()
        self.queue = self._build_queue()
        if not keep_index:
            self.index = 0
        elif current is not None:
            ids = [p.id for p in self.queue]
            self.index = ids.index(current.id) if current.id in ids else min(self.index, max(0, len(ids) - 1))
        if self.scope == "image" and not self.queue and keep_index:
            if self._next_image_with_proposals():
                return  # the image change calls refresh again
        self._show()

    def step(self, delta: int) -> None:
        if self.queue:
            self.index = max(0, min(len(self.queue) - 1, self.index + delta))
            self._show()

    def _next_image_with_proposals(self) -> bool:
        ctl, project = self._ctl, self.window.project
        waiting = project.images_with_pending_proposals(self.threshold)
        after = [i for i in waiting if ctl.image_id is None or i > ctl.image_id] or waiting
        if not after or after[0] == ctl.image_id:
            return False
        self.window.show_image(after[0])
        return True

    def _show(self) -> None:
        ctl, proposal = self._ctl, self.current()
        if proposal is not None and ctl is not None and proposal.image_id != ctl.image_id:
            self.window.show_image(proposal.image_id)  # shown once that image has loaded
            return
        self.preview()
        self.changed.emit()

    def preview(self) -> None:
        """Paint the current proposal in its label's colour (the canvas review layer)."""
        ctl, proposal = self._ctl, self.current()
        if proposal is None or ctl is None or ctl.image is None or proposal.image_id != ctl.image_id or \
                (ctl.session is not None and ctl.session.rounds):
            self.window.canvas.set_review([])
            return
        label = ctl.label_by_name(proposal.label)
        # A label the project does not have yet gets a colour that differs from those it has.
        color = label.color if label is not None else palette.pick_color([lab.color for lab in ctl.labels()])
        mask = masks.decode_resized(proposal.rle, ctl.image.display_size)
        self.window.canvas.set_review([(mask, color)])
        self.window.status.message(
            f"Proposal {self.index + 1}/{len(self.queue)}: {proposal.label} {proposal.score:.2f} ({proposal.mode}) - "
            "Enter accept, X reject, digit relabel, click refine, Shift+Enter accept all above "
            f"{self.threshold:.2f}, Esc leave review", 0)

    # ------------------------------------------------------------------ actions
    def _act(self, action: Any, *args: Any) -> Any:
        try:
            result = action(*args)
        except UserError as exc:
            self.window.show_error(str(exc))
            return None
        self._ctl.labels_changed.emit()
        self._ctl.reload()  # its annotations_changed refreshes the review (review_wiring)
        return result

    def accept(self, label: str | None = None) -> bool:
        proposal = self.current()
        if proposal is None:
            return False
        if not label and proposal.label == UNKNOWN:
            # The model found no label of the list close: the person names it (never "unknown").
            self.window.show_error("This proposal has no label: press a label's digit or type one in the label "
                                   "field, then Enter (X rejects it).")
            return False
        return self._act(self.window.project.accept_proposal, proposal.id, label) is not None

    def reject(self) -> bool:
        proposal = self.current()
        if proposal is None:
            return False
        self._act(self.window.project.reject_proposal, proposal.id)
        return True

    def relabel(self, name: str) -> bool:
        proposal = self.current()
        if proposal is None or not name.strip():
            return False
        return self._act(self.window.project.relabel_proposal, proposal.id, name) is not None

    def accept_all_above(self) -> int:
        ctl = self._ctl
        if not self.active or ctl is None or ctl.image_id is None:
            return 0
        accepted = self._act(self.window.project.accept_proposals_above, ctl.image_id, self.threshold) or []
        self.window.status.message(f"Accepted {len(accepted)} proposal{'s' if len(accepted) != 1 else ''} "
                                   f"scoring {self.threshold:.2f} or more.")
        return len(accepted)

    def seed_object(self) -> None:
        """The controller's hook before the first prompt of a new object: when a proposal is shown
        on this image, the object starts from its mask (round 0), labelled with its label."""
        ctl, proposal = self._ctl, self.current()
        if not self.wants_keys() or proposal is None:
            return
        project = self.window.project
        session = project.start_session(proposal.image_id)
        project.add_round(session.id, (), f"{PROPOSAL_ROUND}{proposal.id}:{proposal.provenance}", proposal.rle,
                          [(proposal.label, proposal.score)], proposal.score)
        ctl.reload()  # the session now refines the proposal (controller.refining)
        ctl.pending_label = proposal.label
        self.window.canvas.set_review([])
