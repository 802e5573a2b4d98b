"""Prompts: what a person gives the model for one object.

All coordinates are in pixels of the *oriented* full-resolution image (EXIF orientation applied),
x to the right, y down, as floats (sub-pixel positions from a zoomed canvas are kept). A round of an
object session holds any mix of these. Prompts are immutable values and serialise to plain JSON
dicts (`prompt_to_dict` / `prompt_from_dict`) so the store can persist them and a later session can
replay them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Point2D = tuple[float, float]


@dataclass(frozen=True)
class PointPrompt:
    """A click. Positive = "this is the object", negative = "this is not"."""

    x: float
    y: float
    positive: bool = True
    kind = "point"


@dataclass(frozen=True)
class BoxPrompt:
    """An axis-aligned box drawn around the object (x0, y0) top-left, (x1, y1) bottom-right."""

    x0: float
    y0: float
    x1: float
    y1: float
    kind = "box"

    def normalized(self) -> BoxPrompt:
        """The same box with x0 <= x1 and y0 <= y1 (a box may be dragged in any direction)."""
        return BoxPrompt(min(self.x0, self.x1), min(self.y0, self.y1),
                         max(self.x0, self.x1), max(self.y0, self.y1))


@dataclass(frozen=True)
class PolygonPrompt:
    """A closed polygon; its filled area is the prompt region (positive or negative)."""

    points: tuple[Point2D, ...]
    positive: bool = True
    kind = "polygon"


@dataclass(frozen=True)
class StrokePrompt:
    """A scribble: an open polyline painted with `width` pixels (in image pixels)."""

    points: tuple[Point2D, ...]
    width: float = 5.0
    positive: bool = True
    kind = "stroke"


@dataclass(frozen=True)
class TextPrompt:
    """Typed words describing the object ("the dog on the left")."""

    text: str
    kind = "text"


@dataclass(frozen=True)
class VoicePrompt:
    """A spoken description, as transcribed; used by the model exactly like a text prompt."""

    transcript: str
    kind = "voice"


@dataclass(frozen=True)
class ReferringPrompt:
    """A region marked on another image of the project ("segment things like this").

    `mask_rle` is a COCO compressed RLE (dict with `size` [h, w] and `counts` str) of the region on
    the reference image `image_id` (its oriented full-resolution size).
    """

    image_id: int
    mask_rle: dict
    kind = "referring"


Prompt = PointPrompt | BoxPrompt | PolygonPrompt | StrokePrompt | TextPrompt | VoicePrompt | ReferringPrompt

SPATIAL_KINDS = frozenset({"point", "box", "polygon", "stroke"})
LANGUAGE_KINDS = frozenset({"text", "voice"})


def _points(raw: Any) -> tuple[Point2D, ...]:
    return tuple((float(p[0]), float(p[1])) for p in raw)


def prompt_to_dict(prompt: Prompt) -> dict:
    """A JSON-ready dict with a `kind` key."""
    if isinstance(prompt, PointPrompt):
        return {"kind": "point", "x": prompt.x, "y": prompt.y, "positive": prompt.positive}
    if isinstance(prompt, BoxPrompt):
        return {"kind": "box", "x0": prompt.x0, "y0": prompt.y0, "x1": prompt.x1, "y1": prompt.y1}
    if isinstance(prompt, PolygonPrompt):
        return {"kind": "polygon", "points": [list(p) for p in prompt.points], "positive": prompt.positive}
    if isinstance(prompt, StrokePrompt):
        return {"kind": "stroke", "points": [list(p) for p in prompt.points], "width": prompt.width,
                "positive": prompt.positive}
    if isinstance(prompt, TextPrompt):
        return {"kind": "text", "text": prompt.text}
    if isinstance(prompt, VoicePrompt):
        return {"kind": "voice", "transcript": prompt.transcript}
    if isinstance(prompt, ReferringPrompt):
        return {"kind": "referring", "image_id": prompt.image_id, "mask_rle": dict(prompt.mask_rle)}
    raise TypeError(f"not a prompt: {prompt!r}")


def prompt_from_dict(data: dict) -> Prompt:
    """Inverse of `prompt_to_dict`; raises ValueError on an unknown kind or missing field."""
    try:
        kind = data["kind"]
        if kind == "point":
            return PointPrompt(float(data["x"]), float(data["y"]), bool(data.get("positive", True)))
        if kind == "box":
            return BoxPrompt(float(data["x0"]), float(data["y0"]), float(data["x1"]), float(data["y1"]))
        if kind == "polygon":
            return PolygonPrompt(_points(data["points"]), bool(data.get("positive", True)))
        if kind == "stroke":
            return StrokePrompt(_points(data["points"]), float(data.get("width", 5.0)),
                                bool(data.get("positive", True)))
        if kind == "text":
            return TextPrompt(str(data["text"]))
        if kind == "voice":
            return VoicePrompt(str(data["transcript"]))
        if kind == "referring":
            return ReferringPrompt(int(data["image_id"]), dict(data["mask_rle"]))
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"malformed prompt {data!r}: {exc}") from exc
    raise ValueError(f"unknown prompt kind {data.get('kind')!r}")


def prompt_text(prompt: Prompt) -> str | None:
    """The words of a text or voice prompt, else None."""
    if isinstance(prompt, TextPrompt):
        return prompt.text
    if isinstance(prompt, VoicePrompt):
        return prompt.transcript
    return None
