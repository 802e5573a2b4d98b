"""Redrawing the window from the controller's state: annotations (with a display-mask cache), the
candidate and its prompts, the object info line, the labels panel, the segment-everything preview.
A mixin of MainWindow, kept apart so the window file is about assembly."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from seem_annotator.core import masks
from seem_annotator.gui import overlays
from seem_annotator.gui.canvas import AnnotationView

MASK_CACHE_BYTES = 256 * 2**20


class ViewSyncMixin:
    """Needs: controller, canvas, labels_panel, label_completer, label_field, object_info,
    _mask_cache (OrderedDict), _shown_image."""

    _mask_cache: OrderedDict[tuple[int, float], Any]

    def _canvas_current(self) -> bool:
        """False while the canvas still shows the previous image (image_changed redraws then)."""
        ctl = self.controller
        return ctl is not None and ctl.image is not None and self.canvas.display_size == ctl.image.display_size \
            and self.canvas.full_size == ctl.image.full_size and self._shown_image == ctl.image_id

    def refresh_annotations(self) -> None:
        ctl = self.controller
        if not self._canvas_current():
            return

        labels = {label.id: label for label in ctl.labels()}
        views = []
        for ann in ctl.annotations:
            key = (ann.id, ann.updated_at)
            cached = self._mask_cache.get(key)
            if cached is None or cached.shape != ctl.image.display_size:
                # Straight from the runs at display size: no full-resolution decode for big photos.
                self._mask_cache[key] = masks.decode_resized(ann.rle, ctl.image.display_size)
            self._mask_cache.move_to_end(key)
            label = labels.get(ann.label_id)
            views.append(AnnotationView(ann.id, self._mask_cache[key], tuple(label.color) if label else (255, 255, 255),
                                        label.name if label else "?"))
        while len(self._mask_cache) > len(views) and sum(m.nbytes for m in self._mask_cache.values()) > MASK_CACHE_BYTES:
            self._mask_cache.popitem(last=False)
        self.canvas.set_annotations(views)
        self.canvas.set_selected(ctl.selected[0] if ctl.selected else None)
        self.refresh_labels()
        self._reload_vertex_tool()

    def refresh_candidate(self) -> None:
        ctl = self.controller
        if not self._canvas_current():
            return
        mask = ctl.candidate_mask
        # The candidate keeps one distinct colour (with a dashed outline) so it never passes for an
        # accepted annotation of the same label.
        self.canvas.set_candidate(None if mask is None else overlays.to_display(mask, ctl.image.display_size))
        self.canvas.set_prompts(ctl.session_prompts())
        self._update_object_info()
        self._reload_vertex_tool()

    def _update_object_info(self) -> None:
        ctl = self.controller
        if ctl.session is None and not ctl.pending:
            self.object_info.setText("")
            self.label_field.setPlaceholderText("label for Enter (proposal / last used)")
            return
        rounds = len(ctl.session.rounds) if ctl.session else 0
        proposals = [(n, p) for n, p in (ctl.candidate.labels if ctl.candidate else []) if n != "unknown"][:3]
        text = f"  object: {rounds} round{'s' if rounds != 1 else ''}"
        if proposals:
            text += "  proposals: " + ", ".join(f"{n} {p:.2f}" for n, p in proposals)
        if len(ctl.alternatives) > 1:
            text += f"  mask {ctl.alt_index + 1}/{len(ctl.alternatives)} (Tab)"
        self.object_info.setText(text)
        label = ctl.resolve_label()
        self.label_field.setPlaceholderText(f"Enter accepts as: {label}" if label else "type a label, Enter accepts")

    def refresh_labels(self) -> None:
        ctl = self.controller
        if ctl is None:
            return
        labels = ctl.labels()
        self.labels_panel.set_labels(labels, ctl.counts())
        self.label_completer.model().setStringList([label.name for label in labels])

    def _reload_vertex_tool(self) -> None:
        tool = self.canvas.tool
        if tool is not None and tool.name == "vertices":
            tool.reload()

    def preview_review(self, layers: list) -> None:
        ctl = self.controller
        if ctl is None or ctl.image is None:
            return
        self.canvas.set_review([(overlays.to_display(mask, ctl.image.display_size), color) for mask, color in layers])

