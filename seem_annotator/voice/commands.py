"""Run a parsed `VoiceCommand` against the main window's command API.

The window exposes `window.commands` with one method per action (see `CommandAPI`); this module is
the only place that knows which grammar action calls which method, so the GUI panel, the tests and
any other front end share one mapping. Nothing here imports Qt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from seem_annotator.voice.grammar import ACTIONS, VoiceCommand


class CommandAPI(Protocol):
    """What the main window offers to voice (and to other remote controls)."""

    def accept(self) -> Any: ...
    def cancel(self) -> Any: ...
    def undo(self) -> Any: ...
    def redo(self) -> Any: ...
    def delete_selected(self) -> Any: ...
    def next_image(self) -> Any: ...
    def previous_image(self) -> Any: ...
    def segment_everything(self) -> Any: ...
    def set_polarity(self, positive: bool) -> Any: ...
    def zoom_in(self) -> Any: ...
    def zoom_out(self) -> Any: ...
    def text_prompt(self, text: str) -> Any: ...
    def voice_prompt(self, text: str) -> Any: ...
    def set_label(self, name: str) -> Any: ...


_CALLS: dict[str, Callable[[CommandAPI, VoiceCommand], Any]] = {
    "prompt": lambda api, c: api.text_prompt(c.text or ""),
    "label": lambda api, c: api.set_label(c.label or ""),
    "accept": lambda api, c: api.accept(),
    "cancel": lambda api, c: api.cancel(),
    "undo": lambda api, c: api.undo(),
    "redo": lambda api, c: api.redo(),
    "delete": lambda api, c: api.delete_selected(),
    "next": lambda api, c: api.next_image(),
    "previous": lambda api, c: api.previous_image(),
    "everything": lambda api, c: api.segment_everything(),
    "add": lambda api, c: api.set_polarity(True),
    "remove": lambda api, c: api.set_polarity(False),
    "zoom_in": lambda api, c: api.zoom_in(),
    "zoom_out": lambda api, c: api.zoom_out(),
}
assert set(_CALLS) == set(ACTIONS), "every grammar action needs exactly one API call"


def execute(command: VoiceCommand, api: CommandAPI, spoken: bool = False) -> str:
    """Call the API method for `command`; returns a short past-tense note for the status bar.

    `spoken`: the words came from speech, so a prompt is stored as a voice prompt (`voice_prompt`)
    rather than a typed one (`text_prompt`).
    UserErrors from the API (e.g. a text prompt without a SEEM model) propagate to the caller.
    """
    if command.action not in _CALLS:
        raise ValueError(f"unknown voice action {command.action!r}")
    if command.action == "prompt" and not (command.text or "").strip():
        raise ValueError("a prompt command needs text")
    if command.action == "label" and not (command.label or "").strip():
        raise ValueError("a label command needs a label name")
    if command.action == "prompt" and spoken:
        api.voice_prompt(command.text or "")
    else:
        _CALLS[command.action](api, command)
    return f"Voice: {command.describe()}"


def project_labels(window: Any) -> list[str]:
    """The project's label names as the window knows them (empty if it offers none)."""
    for owner in (getattr(window, "commands", None), getattr(window, "controller", None), window):
        getter = getattr(owner, "label_names", None)
        if callable(getter):
            try:
                return [str(n) for n in getter()]
            except Exception:  # no project open yet: no labels to match against
                return []
    return []


def vocabulary_hint(labels: list[str], limit: int = 60) -> str:
    """A short initial prompt that nudges Whisper towards our command words and label names."""
    words = ["segment", "label it as", "accept", "cancel", "undo", "redo", "delete", "next image",
             "previous image", "everything", "zoom in", "zoom out"]
    return ", ".join(words + list(labels)[:limit]) + "."
