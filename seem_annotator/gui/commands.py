"""`window.commands`: the one command API behind menus, shortcuts, toolbar buttons and voice.

Each method is a complete user action that is safe to call at any time (no project open, a
gesture in progress, the model busy) and reports problems in the status bar, never by raising.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QLineEdit

if TYPE_CHECKING:
    from seem_annotator.gui.main_window import MainWindow

MAX_WIDTH_STEP = 16.0  # px per Ctrl+] / Ctrl+[ press: a wide brush must not jump past the width wanted

class Commands:
    def __init__(self, window: MainWindow) -> None:
        self.window = window

    @property
    def _ctl(self):
        return self.window.controller

    def _ready(self) -> bool:
        return self._ctl is not None and self._ctl.image_id is not None

    def label_names(self) -> list[str]:
        """The project's label names (empty before a project is open)."""
        return [] if self._ctl is None else list(self._ctl.label_names())

    # -- the object in progress ------------------------------------------------------------------
    def accept(self, label: str | None = None) -> bool:
        """Enter: accept the candidate (label = given, chosen, top proposal or last used)."""
        if not self._ready():
            return False
        tool = self.window.canvas.tool
        if label is None and tool is not None and tool.busy() and tool.key_enter():
            return False  # Enter finished a polygon being drawn
        focus = self.window.focusWidget()
        if label is None and isinstance(focus, QLineEdit) and focus is self.window.text_field:
            self.text_prompt(focus.text())  # Enter in the text field sends the prompt
            return False
        if label is None and self.window.label_field.text().strip():
            label = self.window.label_field.text().strip()
        review = self.window.review
        ok = review.accept(label) if review.wants_keys() else self._ctl.accept(label)
        if ok:
            self.window.label_field.clear()
        if focus is self.window.label_field:
            self.window.label_focus.back_to_canvas_soon()  # the next keys are tool keys again
        return ok

    def cancel(self) -> None:
        """Esc: cancel a gesture, then pending prompts, then the object, then the selection."""
        if not self._ready():
            return
        tool = self.window.canvas.tool
        if tool is not None and tool.busy():
            tool.cancel()
            return
        if self.window.review.wants_keys() and not self._ctl.selected:
            self.window.review.stop()  # nothing of the user's to cancel: Esc leaves review mode
            self.window.status.message("Review mode off.")
            return
        self._ctl.cancel()

    def text_prompt(self, text: str) -> None:
        """A typed description of the object (stored as a text prompt)."""
        if self._ready() and text.strip():
            self._ctl.text_prompt(text)
            self.window.text_field.clear()
            self.window.canvas.setFocus()

    def voice_prompt(self, text: str) -> None:
        """A spoken description, as transcribed (stored as a voice prompt)."""
        if self._ready() and text.strip():
            self._ctl.voice_prompt(text)
            self.window.canvas.setFocus()

    def set_label(self, name: str) -> None:
        """Label the object in progress, or relabel the selected annotations."""
        if self._ready():
            if self.window.review.wants_keys() and not self._ctl.selected:
                self.window.review.relabel(name)
                return
            self._ctl.set_label(name)

    def set_polarity(self, positive: bool) -> None:
        if self._ctl is not None:
            self._ctl.positive = bool(positive)
            self.window.sync_polarity()

    def toggle_polarity(self) -> None:
        if self._ctl is not None:
            self.set_polarity(not self._ctl.positive)

    def next_alternative(self) -> None:
        if self._ready():
            self._ctl.next_alternative()

    def use_reference(self) -> None:
        if self._ready():
            self._ctl.use_reference()

    def segment_everything(self) -> None:
        if self._ready():
            self.window.start_segment_everything()

    # -- history ---------------------------------------------------------------------------------
    def undo(self) -> None:
        if self._ready():
            tool = self.window.canvas.tool
            if tool is not None and tool.busy():
                tool.cancel()
                return
            self._ctl.undo()

    def redo(self) -> None:
        if self._ready():
            self._ctl.redo()

    # -- annotations -----------------------------------------------------------------------------
    def delete_selected(self) -> None:
        if self._ready():
            if self.window.review.wants_keys() and not self._ctl.selected:
                self.window.review.reject()
                return
            self._ctl.delete_selected(hovered=self.window.canvas.hover_id)

    # -- review mode (gui/proposal_review.py) ------------------------------------------------------
    def toggle_review(self) -> None:
        if self._ready():
            review = self.window.review
            review.stop() if review.active else review.start()

    def reject_proposal(self) -> None:
        if self._ready() and self.window.review.wants_keys():
            self.window.review.reject()

    def accept_proposals_above(self) -> None:
        if self._ready() and self.window.review.active:
            self.window.review.accept_all_above()

    def relabel_selected(self) -> None:
        if self._ready():
            self.window.ask_label(for_selection=True)

    def merge_selected(self) -> None:
        if self._ready():
            self._ctl.merge_selected()

    def subtract_selected(self) -> None:
        if self._ready():
            self._ctl.subtract_selected()

    def split_selected(self) -> None:
        if self._ready():
            self._ctl.split_selected()

    def raise_selected(self) -> None:
        if self._ready():
            self._ctl.move_selected(+1)

    def lower_selected(self) -> None:
        if self._ready():
            self._ctl.move_selected(-1)

    # -- navigation and view ---------------------------------------------------------------------
    def next_image(self) -> None:
        self.window.step_image(+1)

    def previous_image(self) -> None:
        self.window.step_image(-1)

    def toggle_done(self) -> None:
        if self._ready():
            self._ctl.toggle_done()

    def zoom_in(self) -> None:
        self.window.canvas.zoom_in()

    def zoom_out(self) -> None:
        self.window.canvas.zoom_out()

    def fit(self) -> None:
        self.window.canvas.fit_to_window()

    def change_opacity(self, delta: float) -> None:
        slider = self.window.opacity_slider
        slider.setValue(max(0, min(100, slider.value() + round(delta * 100))))

    def toggle_outlines(self) -> None:
        canvas = self.window.canvas
        canvas.show_outlines = not canvas.show_outlines
        self.window.refresh_annotations()

    def change_width(self, wider: bool) -> None:
        """Ctrl+] / Ctrl+[: the width the current tool uses (brush/eraser or scribble), the one the
        width box shows, in steps of a quarter of it, at least 1 px and at most MAX_WIDTH_STEP."""
        if self._ctl is None:
            return
        tool = self.window.canvas.tool
        brushy = tool is not None and tool.name in ("brush", "eraser")
        attr, top = ("brush_width", 400.0) if brushy else ("stroke_width", 200.0)
        width = getattr(self._ctl, attr)
        step = min(max(1.0, width * (0.25 if wider else 0.2)), MAX_WIDTH_STEP)
        setattr(self._ctl, attr, max(1.0, min(top, round(width + step if wider else width - step))))
        self.window.sync_widths()
        self.window.settings.setValue(f"tools/{attr}", getattr(self._ctl, attr))

    def set_tool(self, name: str) -> None:
        self.window.set_tool(name)
