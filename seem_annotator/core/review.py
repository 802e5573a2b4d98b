"""Reviewing proposals: accept, reject, relabel, accept every one above a score on an image.

Each operation is one transaction and one entry of the image's undo history (`history.Recorder`
over the proposals and annotations rows), like every other edit: undo puts the proposal back to
pending and removes the annotation it became. An accepted proposal becomes an annotation that
keeps its provenance: `provenance` "run:<id>/<mode>", the model's `score`, `source` with the run,
mode, model and proposal id, and who reviewed it when (`reviewed_by`, `reviewed_at`). A label a
proposal names that the project lacks is added (label changes are project-wide, not undone).
"""

from __future__ import annotations

import getpass

from seem_annotator.core import annotations as ann_ops
from seem_annotator.core import labels as label_ops
from seem_annotator.core import masks, runs
from seem_annotator.core.history import Recorder
from seem_annotator.core.records import AnnotationRecord
from seem_annotator.core.store import Store, now
from seem_annotator.errors import UserError


class ReviewError(UserError):
    """A review action is impossible (unknown proposal, already reviewed, empty name...)."""


def reviewer() -> str:
    """The person reviewing: the login name (for `reviewed_by`)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers)
        return "user"


def _pending(store: Store, proposal_id: int) -> runs.ProposalRecord:
    proposal = runs.get_proposal(store, proposal_id)
    if proposal is None:
        raise ReviewError(f"Proposal {proposal_id} does not exist.")
    if proposal.state != runs.PENDING:
        raise ReviewError(f"Proposal {proposal_id} was already {proposal.state}.")
    return proposal


def _label_id(store: Store, name: str) -> int:
    label = label_ops.find_by_name(store, name) or label_ops.add_label(store, name)
    return label.id


def _accept(rec: Recorder, proposal: runs.ProposalRecord, by: str, at: float, label: str | None = None,
            rle: dict | None = None) -> int:
    store = rec.store
    clean = ann_ops.check_rle(store, proposal.image_id, rle if rle is not None else proposal.rle)
    if masks.area(clean) == 0:
        raise ReviewError(f"Proposal {proposal.id} has an empty mask; reject it instead.")
    run = runs.get_run(store, proposal.run_id)
    source = {"run_id": proposal.run_id, "mode": proposal.mode, "model": run.model, "proposal_id": proposal.id}
    if rle is not None:
        source["refined"] = True  # a person refined the proposed mask before accepting it
    ann_id = ann_ops.insert(rec, proposal.image_id, _label_id(store, label or proposal.label), clean,
                            score=proposal.score, source=source, provenance=proposal.provenance,
                            reviewed_by=by, reviewed_at=at)
    rec.update("proposals", proposal.id, state=runs.ACCEPTED, annotation_id=ann_id,
               label=label or proposal.label, updated_at=at)
    return ann_id


def accept(store: Store, proposal_id: int, label: str | None = None, reviewed_by: str | None = None,
           rle: dict | None = None) -> AnnotationRecord:
    """The proposal becomes an annotation (under `label` when given, else its own; with the mask
    `rle` instead of the proposed one when a person refined it)."""
    with store.transaction():
        proposal = _pending(store, proposal_id)
        rec = Recorder(store, proposal.image_id)
        ann_id = _accept(rec, proposal, reviewed_by or reviewer(), now(), label, rle)
        rec.commit("accept_proposal")
        return ann_ops.get(store, ann_id)


def reject(store: Store, proposal_id: int) -> None:
    with store.transaction():
        proposal = _pending(store, proposal_id)
        rec = Recorder(store, proposal.image_id)
        rec.update("proposals", proposal.id, state=runs.REJECTED, updated_at=now())
        rec.commit("reject_proposal")


def relabel(store: Store, proposal_id: int, label: str) -> runs.ProposalRecord:
    """Change a pending proposal's label (it stays pending)."""
    name = " ".join(label.split())
    if not name:
        raise ReviewError("A proposal's label cannot be empty.")
    with store.transaction():
        proposal = _pending(store, proposal_id)
        if proposal.label == name:
            return proposal
        rec = Recorder(store, proposal.image_id)
        rec.update("proposals", proposal.id, label=name, updated_at=now())
        rec.commit("relabel_proposal")
        return runs.get_proposal(store, proposal.id)  # type: ignore[return-value]


def accept_above(store: Store, image_id: int, threshold: float, reviewed_by: str | None = None
                 ) -> list[AnnotationRecord]:
    """Accept every pending proposal of the image scoring `threshold` or more, best first, as one
    undoable step; returns the new annotations (none: no step recorded)."""
    with store.transaction():
        chosen = [p for p in runs.list_proposals(store, int(image_id)) if p.score >= threshold]
        if not chosen:
            return []
        rec = Recorder(store, int(image_id))
        by, at = reviewed_by or reviewer(), now()
        ids = [_accept(rec, p, by, at) for p in chosen]
        rec.commit("accept_proposals")
        return [ann_ops.get(store, i) for i in ids]
