"""Object sessions and their rounds.

An object being segmented is an `ObjectSession`: a sequence of `Round`s. Each round holds the
prompts *added* in that round (the model sees all of them cumulatively, `ObjectSession.all_prompts`),
the backend/model that answered, the candidate mask it produced (COCO RLE at the oriented full
resolution) and its label proposals. Undoing a round removes it so the previous round is current
again; redo brings it back. Accepting a session turns it into an annotation; discarding drops it.
Both are undoable through the image's history (see `core.history`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from seem_annotator.core.prompts import Prompt, prompt_from_dict, prompt_to_dict
from seem_annotator.errors import UserError

OPEN, ACCEPTED, DISCARDED = "open", "accepted", "discarded"


class SessionError(UserError):
    """An object session cannot take this action (not open, unknown, or another one in progress)."""


@dataclass(frozen=True)
class Round:
    """One round of an object session.

    `index` counts from 0 within the session. `prompts` are the prompts added in this round only.
    `mask_rle` is the candidate mask (None when the backend gave nothing), `label_proposals` are
    (label name, probability) pairs best first, `score` the backend's quality estimate.
    """

    id: int
    session_id: int
    index: int
    prompts: tuple[Prompt, ...]
    backend: str
    mask_rle: dict | None
    label_proposals: tuple[tuple[str, float], ...]
    score: float | None
    created_at: float


@dataclass
class ObjectSession:
    """An object in progress (state "open"), or a finished one ("accepted" / "discarded").

    `rounds` holds the active rounds in order (undone rounds are gone from it).
    """

    id: int
    image_id: int
    state: str
    rounds: list[Round] = field(default_factory=list)
    annotation_id: int | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    def all_prompts(self) -> tuple[Prompt, ...]:
        """Every prompt of every active round, in the order given: what the model decodes from."""
        return tuple(p for r in self.rounds for p in r.prompts)

    @property
    def last_round(self) -> Round | None:
        return self.rounds[-1] if self.rounds else None

    @property
    def mask_rle(self) -> dict | None:
        """The current candidate mask: the latest round's."""
        return self.rounds[-1].mask_rle if self.rounds else None

    @property
    def label_proposals(self) -> tuple[tuple[str, float], ...]:
        return self.rounds[-1].label_proposals if self.rounds else ()

    @property
    def is_open(self) -> bool:
        return self.state == OPEN


def round_from_row(row: Any) -> Round:
    """A Round from a `rounds` table row (mapping with the column names)."""
    return Round(
        id=int(row["id"]),
        session_id=int(row["session_id"]),
        index=int(row["idx"]),
        prompts=tuple(prompt_from_dict(d) for d in json.loads(row["prompts"])),
        backend=str(row["backend"]),
        mask_rle=None if row["mask_rle"] is None else json.loads(row["mask_rle"]),
        label_proposals=tuple((str(n), float(p)) for n, p in json.loads(row["label_proposals"])),
        score=None if row["score"] is None else float(row["score"]),
        created_at=float(row["created_at"]),
    )


def prompts_to_json(prompts: tuple[Prompt, ...] | list[Prompt]) -> list[dict]:
    """Prompts as JSON-ready dicts (also validates that each one is a known prompt type)."""
    return [prompt_to_dict(p) for p in prompts]


def clean_proposals(proposals: Any) -> list[list[Any]]:
    """Label proposals as [[name, probability], ...] with plain Python types."""
    out: list[list[Any]] = []
    for item in proposals or ():
        name, prob = item
        out.append([str(name), float(prob)])
    return out
