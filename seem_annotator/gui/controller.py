"""The object workflow behind the window: prompts -> rounds on the worker -> candidate -> accept.

Every prompt a tool produces is queued as *pending* and a `DecodeRequest` with all the session's
prompts (persisted rounds + pending) and the previous round's memory goes to the worker. When the
newest answer arrives the pending prompts and the answer are stored as one round (one undoable,
committed action); older answers for the same object are stale and dropped. Enter accepts the
candidate with a label, Esc discards it. Undo/redo go through the project's persisted per-image
history, after which the view is reloaded from the store - the store is the only truth.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from seem_annotator.core import masks
from seem_annotator.core.labels import normalize_name
from seem_annotator.core.prompts import Prompt, ReferringPrompt, TextPrompt, VoicePrompt
from seem_annotator.core.records import AnnotationRecord, ImageRecord, LabelRecord
from seem_annotator.engine.types import Candidate, DecodeRequest, ImageInput
from seem_annotator.errors import UserError
from seem_annotator.gui.edits import EditsMixin, reports_errors
from seem_annotator.gui.image_loader import ImageLoader, LoadedImage

UNKNOWN = "unknown"


PROPOSAL_ROUND = "proposal:"  # backend of a round seeded from a proposal: "proposal:<id>:run:<run>/<mode>"


def refined_proposal(session: Any) -> int | None:
    """The proposal an open object started from (its first round was seeded from it), else None."""
    rounds = [] if session is None else session.rounds
    if not rounds or not str(rounds[0].backend or "").startswith(PROPOSAL_ROUND):
        return None
    try:
        return int(str(rounds[0].backend).split(":")[1])
    except (IndexError, ValueError):
        return None


# What an undo-history action was, in the status bar's words (Ctrl+Z says what it took back).
ACTION_WORDS = {
    "round": "a prompt", "accept": "accept", "discard": "discard", "relabel": "relabel", "merge": "merge",
    "subtract": "subtract", "split": "split", "delete": "delete", "reorder": "z-order change",
    "edit_mask": "mask edit", "accept_proposal": "proposal accepted", "reject_proposal": "proposal rejected",
    "relabel_proposal": "proposal relabelled", "accept_proposals": "proposals accepted above the threshold",
    "track_keyframe": "keyframe", "propagate": "propagation",
}


def describe_action(action: str) -> str:
    return ACTION_WORDS.get(action, action.replace("_", " "))


class AnnotationController(EditsMixin, QObject):
    """Holds the current image, object session and selection; implements the tool host."""

    image_changed = Signal()
    annotations_changed = Signal()
    candidate_changed = Signal()
    labels_changed = Signal()
    image_status_changed = Signal(object)  # ImageRecord
    busy_changed = Signal(bool)
    decoded = Signal(float)  # milliseconds of the last round
    message = Signal(str)
    error = Signal(str)
    needs_label = Signal()  # accept with no label to use: the window asks the user

    def __init__(self, project: Any, bridge: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project = project
        self.bridge = bridge
        self.backend_name = "classical"
        self.image: LoadedImage | None = None
        self._current_record: ImageRecord | None = None
        self.image_problem = ""  # why no image is shown (unreadable, loading, failed), for the canvas
        self.session: Any = None  # core.rounds.ObjectSession (open) or None
        self.pending: list[Prompt] = []
        self.candidate: Candidate | None = None
        self.candidate_mask: np.ndarray | None = None  # bool, full size
        self.alternatives: list[np.ndarray] = []
        self.alt_index = 0
        self._memory: dict[int, Any] = {}  # round id -> backend memory of that round
        self._latest: DecodeRequest | None = None
        self.selected: list[int] = []
        self.positive = True
        self.stroke_width = 8.0
        self.brush_width = 12.0
        self.pending_label: str | None = None
        # By id, not name: a label renamed since is still the one last used (found in the app:
        # after renaming cat to kitty, Enter brought back a new "cat" label).
        self._last_label_id: int | None = None
        self.keep_last_label = False
        # A mask this small is probably a slip: accepting it takes a second Enter (issue 15 item 1).
        self.tiny_mask_pixels = 64
        self.tiny_mask_fraction = 1e-4
        self._tiny_confirmed: int | None = None  # round id the user confirmed despite its size
        # Review mode (gui/proposal_review.py): the first prompt of a new object may start from a
        # proposal's mask (`seed_object`); `refining` is then that proposal's id.
        self.seed_object: Callable[[], None] | None = None
        self.refining: int | None = None
        self.reference: ReferringPrompt | None = None
        self.annotations: list[AnnotationRecord] = []
        self.loader = ImageLoader(self)
        self._accept_when_ready: tuple | None = None
        bridge.result.connect(self._on_result)
        bridge.failed.connect(self._on_failed)

    # ------------------------------------------------------------------ images
    def labels(self) -> list[LabelRecord]:
        return list(self.project.labels())

    def label_names(self) -> tuple[str, ...]:
        return tuple(label.name for label in self.labels())

    def label_by_name(self, name: str) -> LabelRecord | None:
        return self.project.label_by_name(name)

    @reports_errors
    def open_image(self, image_id: int) -> None:
        """Switch to an image: restore its annotations and in-progress object from the store, and
        show it (big files load in the background; prompts wait until it is there)."""
        record = self.project.image(image_id)
        self._drop_transient()
        self.loader.forget()
        self.image = None
        self._current_record = record
        self.reload()
        self.image_problem = ""
        if not record.readable:
            reason = (record.error or "unknown error").rstrip(".")
            self.image_problem = f"{record.file_name} cannot be read: {reason}. Fix or replace the file, then press F5."
            self.error.emit(self.image_problem)
            self.image_changed.emit()
            return
        path = self.project.image_path(image_id)
        if self.loader.cached(record, path) is None and self.loader.needs_thread(record):
            self.image_problem = f"Loading {record.file_name} ({record.width}x{record.height})…"
            self.message.emit(self.image_problem)
            self.image_changed.emit()  # clears the canvas meanwhile
            self.loader.load_async(record, path, lambda image, error: self._loaded(image_id, image, error))
            return
        try:
            image = self.loader.load_now(record, path)
        except UserError as exc:
            image = None
            self.image_problem = str(exc)
            self.error.emit(str(exc))
        self._loaded(image_id, image, None)

    def refresh_image(self) -> None:
        """After a rescan: reopen the current image when its file changed on disk (new content or
        readability), else just re-read its annotations and object."""
        if self._current_record is None:
            return
        record = self.project.image(self._current_record.id)
        if (record.sha256, record.readable) != (self._current_record.sha256, self._current_record.readable):
            self.open_image(record.id)
        else:
            self._current_record = record
            self.reload()

    def _loaded(self, image_id: int, image: LoadedImage | None, error: Exception | None) -> None:
        if image_id != self.image_id:
            return  # the user moved on while it loaded
        if error is not None:
            self.image_problem = str(error) if isinstance(error, UserError) else f"Cannot load the image: {error!r}"
            self.error.emit(self.image_problem)
        elif image is not None:
            self.image_problem = ""
        self.image = image
        self.image_changed.emit()
        if image is not None:
            self.bridge.prefetch([image.model_input])

    @property
    def image_id(self) -> int | None:
        return None if self._current_record is None else self._current_record.id

    def _forget_request(self) -> None:
        """Drop the request in flight (its answer will never be shown)."""
        if self._latest is not None:
            self.bridge.cancel(self._latest.object_id)
        self._latest = None
        if self._accept_when_ready is not None:
            self.message.emit("Accept cancelled: the prompt was withdrawn before its mask arrived.")
        self._accept_when_ready = None

    def _drop_transient(self) -> None:
        self.pending = []
        self._forget_request()
        self.selected = []
        self.pending_label = None
        self.alternatives = []
        self.alt_index = 0
        self.busy_changed.emit(False)

    def reload(self) -> None:
        """Re-read annotations and the open session of the current image from the store."""
        image_id = self.image_id
        if image_id is None:
            return
        self.annotations = list(self.project.annotations(image_id))
        ids = {a.id for a in self.annotations}
        self.selected = [i for i in self.selected if i in ids]
        self.session = self.project.current_session(image_id)
        self.refining = refined_proposal(self.session)
        self._restore_candidate()
        self.annotations_changed.emit()
        self.candidate_changed.emit()
        self.image_status_changed.emit(self.project.image(image_id))

    def _restore_candidate(self) -> None:
        rle = None if self.session is None else self.session.mask_rle
        self.candidate_mask = None if rle is None else masks.decode(rle)
        last = None if self.session is None else self.session.last_round
        self.candidate = None
        if last is not None and rle is not None:
            self.candidate = Candidate(mask=self.candidate_mask, score=last.score if last.score is not None else 1.0,
                                       labels=list(last.label_proposals), memory=self._memory.get(last.id),
                                       backend=last.backend)
        self.alternatives = []
        self.alt_index = 0

    def session_prompts(self) -> tuple[Prompt, ...]:
        stored = () if self.session is None else self.session.all_prompts()
        return tuple(stored) + tuple(self.pending)

    # ------------------------------------------------------------------ prompts and rounds
    @reports_errors
    def add_prompt(self, prompt: Prompt) -> None:
        if self.image is None:
            return
        self.selected = []
        if (self.session is None or not self.session.rounds) and self.seed_object is not None:
            self.seed_object()  # review mode: refine the proposal shown instead of starting afresh
        self.pending.append(prompt)
        self.candidate_changed.emit()  # markers appear at once
        self._submit()

    def text_prompt(self, text: str) -> None:
        text = text.strip()
        if text:
            self.add_prompt(TextPrompt(text))

    def voice_prompt(self, transcript: str) -> None:
        transcript = transcript.strip()
        if transcript:
            self.add_prompt(VoicePrompt(transcript))

    def _submit(self) -> None:
        if self.session is None:
            self.session = self.project.start_session(self.image_id)
        last = self.session.last_round
        memory = None if last is None else self._memory.get(last.id)
        request = DecodeRequest(
            image=self.image.model_input,
            object_id=f"{self.image_id}:{self.session.id}",
            round_index=len(self.session.rounds),
            prompts=self.session_prompts(),
            memory=memory,
            previous_mask=self.candidate_mask if memory is None else None,
            labels=self.label_names(),
            references=self._references(),
        )
        self._latest = request
        self._sent_at = time.perf_counter()
        self.busy_changed.emit(True)
        self.bridge.submit(request)

    def _references(self) -> dict[int, ImageInput]:
        refs: dict[int, ImageInput] = {}
        for prompt in self.session_prompts():
            if isinstance(prompt, ReferringPrompt) and prompt.image_id not in refs:
                record = self.project.image(prompt.image_id)
                refs[prompt.image_id] = self.loader.load_now(record, self.project.image_path(record.id)).model_input
        return refs

    def _on_result(self, request: DecodeRequest, candidate: Candidate, rle: dict | None) -> None:
        if request is not self._latest:
            return  # superseded by a newer prompt or another image: never shown
        self._latest = None
        self.busy_changed.emit(False)
        prompts = tuple(self.pending)
        self.pending = []
        try:
            round_ = self.project.add_round(self.session.id, prompts, candidate.backend or self.backend_name, rle,
                                            list(candidate.labels), float(candidate.score))
        except UserError as exc:
            self.error.emit(str(exc))
            self.reload()
            return
        self._memory[round_.id] = candidate.memory
        for old in sorted(self._memory)[:-8]:  # model memory can be large: keep the recent rounds only
            del self._memory[old]
        self.session = self.project.current_session(self.image_id)
        self.candidate = candidate
        self.candidate_mask = candidate.mask if rle is not None else None
        self.alternatives = [candidate.mask] + [alt.mask for alt in candidate.alternatives]
        self.alt_index = 0
        total = candidate.timings.get("total") or (time.perf_counter() - self._sent_at) * 1000
        self.decoded.emit(float(total))
        if rle is None:
            self.message.emit("The model found nothing there; try another prompt.")
        self.candidate_changed.emit()
        self.image_status_changed.emit(self.project.image(self.image_id))
        pending_accept, self._accept_when_ready = self._accept_when_ready, None
        if pending_accept is not None and rle is not None:
            self.accept(*pending_accept)

    def _on_failed(self, request: DecodeRequest, exc: BaseException) -> None:
        if request is not self._latest:
            return
        self._latest = None
        self._accept_when_ready = None
        self.busy_changed.emit(False)
        # The prompts that could not be answered are dropped, so the object stays consistent; an
        # object that never got an answer leaves no trace (an empty session just vanishes).
        self.pending = []
        if self.session is not None and not self.session.rounds:
            self.project.discard_session(self.session.id)
            self.session = None
        self.candidate_changed.emit()
        self.error.emit(str(exc) if isinstance(exc, UserError) else f"Segmentation failed: {exc!r}")

    @reports_errors
    def next_alternative(self) -> None:
        if len(self.alternatives) < 2:
            return
        self.alt_index = (self.alt_index + 1) % len(self.alternatives)
        self._store_edit(self.alternatives[self.alt_index], "alternative")

    # ------------------------------------------------------------------ referring
    def set_reference_region(self, mask: np.ndarray) -> None:
        self.reference = ReferringPrompt(self.image_id, masks.encode(mask))
        self.message.emit("Reference region marked; open another image and press Ctrl+R to segment "
                          "things like it.")

    @reports_errors
    def use_reference(self) -> None:
        if self.reference is None:
            self.message.emit("Mark a reference region first (Shift+R, then lasso it on an image).")
            return
        if self.reference.image_id == self.image_id:
            self.message.emit("The reference region is on this image; open another image to use it.")
            return
        self.add_prompt(self.reference)

    # ------------------------------------------------------------------ accept / cancel
    @property
    def last_label(self) -> str | None:
        """The current name of the label last accepted or set, or None (none yet, or deleted since)."""
        if self._last_label_id is None:
            return None
        try:
            return self.project.label(self._last_label_id).name
        except UserError:  # deleted, or merged into another
            return None

    def resolve_label(self, explicit: str | None = None) -> str | None:
        """Label for accepting: typed/spoken > chosen for this object > last used (only when "Keep
        last label" is on) > the model's top proposal; None means the user is asked."""
        if explicit:
            return explicit
        if self.pending_label:
            return self.pending_label
        if self.keep_last_label and self.last_label:
            return self.last_label
        proposals = self.candidate.labels if self.candidate else []
        if proposals and proposals[0][0] != UNKNOWN:
            return proposals[0][0]
        return None  # a label from another object is never used silently

    def tiny_mask_warning(self) -> str | None:
        """Why the candidate needs a second Enter, or None when its size is plausible."""
        if self.candidate_mask is None or self.session is None or not self.session.rounds:
            return None
        if self._tiny_confirmed == self.session.rounds[-1].id:
            return None
        area = int(self.candidate_mask.sum())
        total = self.candidate_mask.size
        if area >= self.tiny_mask_pixels and area >= self.tiny_mask_fraction * total:
            return None
        return (f"This mask is tiny ({area} px, {100 * area / total:.3f}% of the image): press Enter again "
                "to accept it anyway, or refine it.")

    def accept(self, label: str | None = None) -> bool:
        """Turn the object in progress into an annotation (see `resolve_label` for the label).
        True when stored; while an answer is still coming, it is accepted on arrival."""
        if self._latest is not None:
            # Enter pressed before the answer came: accept it as soon as it is shown.
            self._accept_when_ready = (label,)
            self.message.emit("Accepting as soon as the mask arrives…")
            return False
        if self.session is None or self.candidate_mask is None:
            return False
        warning = self.tiny_mask_warning()
        if warning is not None:
            self._tiny_confirmed = self.session.rounds[-1].id  # the next Enter on this round accepts
            self.error.emit(warning)
            return False
        name = self.resolve_label(label)
        if not name:
            self.needs_label.emit()
            return False
        try:
            label_rec = self.ensure_label(name)
            if self.refining is not None and not any(p.id == self.refining for p in
                                                     self.project.proposals(self.image_id)):
                self.refining = None  # the proposal was reviewed meanwhile: keep the object as a new one
            if self.refining is not None:
                # The refined proposal is accepted with the refined mask and keeps its provenance;
                # the object's rounds are closed first, so undo gives back the proposal, then them.
                rle = self.session.mask_rle
                self.project.discard_session(self.session.id)
                self.project.accept_proposal(self.refining, label_rec.name, rle=rle)
                self.refining = None
            else:
                self.project.accept_session(self.session.id, label_rec.id)
        except UserError as exc:
            self.error.emit(str(exc))
            return False
        self._last_label_id = label_rec.id
        self.pending_label = None
        self.labels_changed.emit()
        self.reload()
        return True

    @reports_errors
    def accept_many(self, chosen: list[tuple[dict, str, float]], backend: str = "everything") -> int:
        """Store reviewed segment-everything candidates as annotations, one undoable object each.
        Unlabelled ones ("unknown") get the label chosen for the object (digit, voice), else "object"."""
        if self.image_id is None:
            return 0
        if self.session is not None and self.session.rounds:
            self.error.emit("Accept or discard the object in progress first.")
            return 0
        fallback = self.pending_label or "object"  # never guess a real class for an unlabelled region
        done = 0
        for rle, name, score in chosen:
            name = fallback if not name or name == UNKNOWN else name
            try:
                label = self.ensure_label(name)
                session = self.project.start_session(self.image_id)
                self.project.add_round(session.id, (), f"{backend}:{self.backend_name}", rle, [(name, score)], score)
                self.project.accept_session(session.id, label.id)
                done += 1
            except UserError as exc:
                self.error.emit(str(exc))
                break
        self.labels_changed.emit()
        self.reload()
        self.message.emit(f"Accepted {done} object{'s' if done != 1 else ''}.")
        return done

    def ensure_label(self, name: str) -> LabelRecord:
        existing = self.label_by_name(name)
        if existing is not None:
            return existing
        label = self.project.add_label(name.strip())
        self.labels_changed.emit()
        return label

    @reports_errors
    def cancel(self) -> None:
        """Esc: drop pending prompts, then the object in progress (undoable), then the selection."""
        if self.pending or self._latest is not None:
            self.pending = []
            self._forget_request()
            self.busy_changed.emit(False)
            self.candidate_changed.emit()
            return
        if self.session is not None and self.session.rounds:
            self.project.discard_session(self.session.id)
            self.pending_label = None
            self.reload()
            return
        if self.selected:
            self.selected = []
            self.annotations_changed.emit()

    @reports_errors
    def set_label(self, name: str) -> None:
        """Digit key / voice "label it as X": relabel the selection when there is one (what is
        selected is what the user means), else label the object in progress."""
        name = name.strip()
        if not name:
            return
        if self.selected:
            label = self.ensure_label(name)
            for ann_id in list(self.selected):
                self._edit_annotation(lambda a=ann_id: self.project.relabel(a, label.id))
            self._last_label_id = label.id
            return
        # Named now, made when the object is accepted: a discarded object leaves no empty label
        # behind (found in the app: "label it as whiskers", then Esc, kept a label "whiskers").
        existing = self.label_by_name(name)
        self.pending_label = existing.name if existing is not None else normalize_name(name)
        self.candidate_changed.emit()

    def selection_label(self) -> str | None:
        """The label of the (first) selected annotation: where a relabel dialog starts."""
        by_id = {a.id: a for a in self.annotations}
        for ann_id in self.selected:
            if ann_id in by_id:
                return self.project.label(by_id[ann_id].label_id).name
        return None

    # ------------------------------------------------------------------ undo / redo
    @reports_errors
    def undo(self) -> None:
        if self.pending or self._latest is not None:
            self.cancel()  # an unanswered prompt is undone by forgetting it
            return
        if self.image_id is not None:
            action = self.project.undo(self.image_id)
            self.message.emit("Nothing to undo on this image." if action is None else f"Undone: {describe_action(action)}.")
        self.reload()

    @reports_errors
    def redo(self) -> None:
        if self.image_id is not None:
            action = self.project.redo(self.image_id)
            self.message.emit("Nothing to redo on this image." if action is None else f"Redone: {describe_action(action)}.")
        self.reload()

    def counts(self) -> dict[str, int]:
        """label name -> number of annotations in the project."""
        by_id = self.project.label_counts()
        return {label.name: by_id.get(label.id, 0) for label in self.labels()}
