"""Voice settings as plain data, stored by the GUI in QSettings under `voice/`.

Kept Qt-free: the GUI passes any object with `value(key, default)` / `setValue(key, value)`
(QSettings has both), tests pass a dict-backed one.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Protocol

from seem_annotator.voice.capture import DEFAULT_MAX_SECONDS, MAX_MAX_SECONDS
from seem_annotator.voice.transcribe import DEFAULT_LANGUAGE, DEFAULT_MODEL

GROUP = "voice"


class KeyValueStore(Protocol):
    def value(self, key: str, defaultValue: Any = None) -> Any: ...  # noqa: N803 - QSettings' name
    def setValue(self, key: str, value: Any) -> None: ...  # noqa: N802 - QSettings' name


@dataclass
class VoiceSettings:
    """device: input device name ("" = system default); model: Whisper name or .pt path;
    language: ISO code, "" = detect; max_seconds: longest take; push_to_talk_key: a QKeySequence
    string held on the canvas; confirm_all: show every command before running it (not only
    accept/delete and guesses); vocabulary_hint: give Whisper our command words and labels."""

    device: str = ""
    model: str = DEFAULT_MODEL
    language: str = DEFAULT_LANGUAGE
    max_seconds: float = DEFAULT_MAX_SECONDS
    push_to_talk_key: str = "Space"
    confirm_all: bool = False
    vocabulary_hint: bool = True

    def __post_init__(self) -> None:
        self.max_seconds = float(min(MAX_MAX_SECONDS, max(1.0, float(self.max_seconds))))

    @classmethod
    def load(cls, store: KeyValueStore) -> VoiceSettings:
        """Read from `store`, falling back to defaults for missing or unreadable values."""
        defaults = cls()
        values: dict[str, Any] = {}
        for f in fields(cls):
            default = getattr(defaults, f.name)
            raw = store.value(f"{GROUP}/{f.name}", default)
            values[f.name] = _coerce(raw, default)
        return cls(**values)

    def save(self, store: KeyValueStore) -> None:
        for f in fields(self):
            store.setValue(f"{GROUP}/{f.name}", getattr(self, f.name))


def _coerce(raw: Any, default: Any) -> Any:
    # QSettings hands back strings for everything on some platforms ("true", "15.0").
    if raw is None:
        return default
    try:
        if isinstance(default, bool):
            return raw if isinstance(raw, bool) else str(raw).strip().lower() in ("1", "true", "yes", "on")
        if isinstance(default, float):
            return float(raw)
        return str(raw)
    except (TypeError, ValueError):
        return default
