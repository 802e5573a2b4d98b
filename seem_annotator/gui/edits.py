"""Mask and annotation edits of the annotation controller (a mixin, so the controller file stays
about the prompt -> round -> accept workflow).

Edits of the object in progress (brush, eraser, manual polygon, vertex drag, flipping to an
alternative mask) are stored as prompt-less rounds: undoable like any round and kept across a
crash. Edits of accepted annotations (relabel, mask, merge, subtract, split, delete, z-order) are
the project's own undoable actions. After each, the view reloads from the store.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from seem_annotator.core import masks
from seem_annotator.core.records import AnnotationRecord
from seem_annotator.errors import UserError
from seem_annotator.gui import overlays


def reports_errors(method: Callable) -> Callable:
    """A user action that cannot be done (store locked or full, bad mask, ...) becomes a status
    message through the host's `error` signal instead of an exception escaping into Qt; the
    store's transaction guarantees nothing half-done was kept."""

    @functools.wraps(method)
    def wrapper(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except UserError as exc:
            self.error.emit(str(exc))
            try:
                self.reload()
            except UserError:
                pass  # the store itself is failing; the message above says why
            return None

    return wrapper


class EditsMixin:
    """Needs from the host class: project, image, image_id, session, candidate, candidate_mask,
    alternatives, alt_index, annotations, selected, reload(), and the message/error/labels_changed/
    annotations_changed/image_status_changed signals."""

    project: Any
    selected: list[int]
    annotations: list[AnnotationRecord]

    @reports_errors
    def _store_edit(self, mask: np.ndarray, kind: str) -> None:
        """An edited candidate becomes a prompt-less round, so it is undoable and survives a crash."""
        if self.session is None:
            self.session = self.project.start_session(self.image_id)
        proposals = list(self.candidate.labels) if self.candidate else []
        rle = masks.encode(mask) if mask.any() else None
        self.project.add_round(self.session.id, (), f"edit:{kind}", rle, proposals, None)
        alternatives, alt_index = self.alternatives, self.alt_index
        self.reload()
        if kind == "alternative":
            self.alternatives, self.alt_index = alternatives, alt_index

    @reports_errors
    def manual_polygon(self, points: list[tuple[float, float]]) -> None:
        if self.image is None:
            return
        mask = overlays.rasterize_polygons([np.array(points)], [], self.image.full_size)
        if self.candidate_mask is not None and self.session is not None and self.session.rounds:
            mask = mask | self.candidate_mask  # drawing more adds to the object in progress
        self._store_edit(mask, "manual")

    @reports_errors
    def brush_edit(self, points: list[tuple[float, float]], width: float, erase: bool) -> None:
        if self.image is None:
            return
        stroke = overlays.paint_stroke(self.image.full_size, points, width)
        if len(self.selected) == 1 and self.candidate_mask is None:
            ann = self._annotation(self.selected[0])
            base = masks.decode(ann.rle)
            new = base & ~stroke if erase else base | stroke
            self._edit_annotation(lambda: self.project.set_mask(ann.id, masks.encode(new)))
            return
        base = self.candidate_mask if self.candidate_mask is not None else np.zeros(self.image.full_size, bool)
        if erase and self.candidate_mask is None:
            self.message.emit("Select an annotation or start an object before erasing.")
            return
        self._store_edit(base & ~stroke if erase else base | stroke, "eraser" if erase else "brush")

    def vertex_edit_target(self) -> np.ndarray | None:
        if self.candidate_mask is not None:
            return self.candidate_mask
        if len(self.selected) == 1:
            return masks.decode(self._annotation(self.selected[0]).rle)
        return None

    @reports_errors
    def vertex_edit(self, mask: np.ndarray) -> None:
        if self.candidate_mask is not None:
            self._store_edit(mask, "vertices")
        elif len(self.selected) == 1:
            self._edit_annotation(lambda: self.project.set_mask(self.selected[0], masks.encode(mask)))

    def _annotation(self, ann_id: int) -> AnnotationRecord:
        return next(a for a in self.annotations if a.id == ann_id)

    def _edit_annotation(self, action: Callable[[], object], done: str | None = None) -> object:
        """Run one stored edit and show the result; `done`: what the status bar says when it worked."""
        result = None
        try:
            result = action()
        except UserError as exc:
            self.error.emit(str(exc))
            done = None
        self.labels_changed.emit()
        self.reload()
        if done:
            self.message.emit(done)
        return result

    def select_annotation(self, ann_id: int | None, add: bool = False) -> None:
        if ann_id is None:
            self.selected = [] if not add else self.selected
        elif add:
            self.selected = [i for i in self.selected if i != ann_id] if ann_id in self.selected \
                else [*self.selected, ann_id]
        else:
            self.selected = [ann_id]
        self.annotations_changed.emit()

    @reports_errors
    def delete_selected(self, hovered: int | None = None) -> None:
        targets = list(self.selected) or ([hovered] if hovered is not None else [])
        if not targets:
            self.message.emit("Select an annotation first (Q, then click it).")
            return
        for ann_id in targets:
            self._edit_annotation(lambda a=ann_id: self.project.delete(a))
        self.selected = []

    @reports_errors
    def merge_selected(self) -> None:
        if len(self.selected) < 2:
            self.message.emit("Select two or more annotations (Shift+click) to merge.")
            return
        self._edit_annotation(lambda: self.project.merge(list(self.selected)),
                              f"Merged {len(self.selected)} annotations into one (Ctrl+Z undoes).")

    @reports_errors
    def subtract_selected(self) -> None:
        if len(self.selected) < 2:
            self.message.emit("Select the annotation to cut, then Shift+click the ones to subtract.")
            return
        first, *others = self.selected
        for other in others:
            self._edit_annotation(lambda o=other: self.project.subtract(first, o))

    @reports_errors
    def split_selected(self) -> None:
        if len(self.selected) != 1:
            self.message.emit("Select one annotation to split into its connected parts.")
            return
        parts = self._edit_annotation(lambda: self.project.split(self.selected[0]))
        if isinstance(parts, list):  # (one connected part is refused, with the store's message)
            self.message.emit(f"Split into {len(parts)} annotations (Ctrl+Z undoes).")

    @reports_errors
    def move_selected(self, step: int) -> None:
        if len(self.selected) != 1:
            return
        ann_id = self.selected[0]
        self._edit_annotation(lambda: self.project.raise_(ann_id) if step > 0 else self.project.lower(ann_id))

    @reports_errors
    def toggle_done(self) -> None:
        if self.image_id is None:
            return
        record = self.project.image(self.image_id)
        self.project.set_image_status(self.image_id, None if record.status == "done" else "done")
        self.image_status_changed.emit(self.project.image(self.image_id))

