"""The engine's contract: what a segmentation backend takes and gives back.

Data flows one way: the GUI/CLI builds a `DecodeRequest` from an object session (all prompts it
holds, cumulative over rounds, plus the previous round's answer as memory), the worker hands it to a
`SegmentationBackend`, and a `Candidate` comes back. Nothing here imports Qt.

Coordinates in prompts are full-resolution oriented image pixels. `ImageInput.pixels` may be a
downscaled proxy of a very large image; backends scale prompts to it and return masks at
`ImageInput.full_size`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from seem_annotator.core.prompts import Prompt


@dataclass(frozen=True, eq=False)
class ImageInput:
    """An image as the model sees it.

    key: stable content key (the file's sha256) used for feature caching.
    pixels: (h, w, 3) uint8 RGB, EXIF-oriented; possibly downscaled from full_size.
    full_size: (H, W) of the oriented original; masks come back at this size.
    """

    key: str
    pixels: np.ndarray
    full_size: tuple[int, int]

    @property
    def scale(self) -> float:
        """pixels-per-full-resolution-pixel (1.0 when not downscaled)."""
        return self.pixels.shape[0] / self.full_size[0]


@dataclass(frozen=True, eq=False)
class DecodeRequest:
    """One round for one object.

    object_id: the object session's id; a newer request with the same id supersedes older ones.
    round_index: index of the round this answer belongs to.
    prompts: every prompt the session holds (all rounds so far, in order).
    memory: the previous round's `Candidate.memory` when the caller still has it (exact SEEM
        memory), else None.
    previous_mask: the previous round's accepted candidate as a bool (H, W) mask (e.g. after the
        app was reopened and only the persisted RLE survives); used when memory is None.
    labels: the project's label names, for label proposals.
    references: ImageInput for each image a ReferringPrompt points at, by image id.
    seed: seeds every stochastic choice so the same request gives the same answer.
    """

    image: ImageInput
    object_id: str
    round_index: int
    prompts: tuple[Prompt, ...]
    memory: Any = None
    previous_mask: np.ndarray | None = None
    labels: tuple[str, ...] = ()
    references: dict[int, ImageInput] = field(default_factory=dict)
    seed: int = 0


@dataclass(eq=False)
class Candidate:
    """A proposed mask for one object.

    mask: bool (H, W) at the image's full resolution.
    score: the backend's confidence in [0, 1] (predicted IoU-like; 1.0 when it has none).
    labels: label proposals, best first, as (name, score); name "unknown" when nothing is close.
    alternatives: other masks worth flipping to (e.g. when the top scores are close).
    memory: opaque backend state to pass back as `DecodeRequest.memory` in the next round.
    timings: milliseconds per stage (e.g. {"encode": .., "decode": .., "total": ..}).
    backend: name of the backend that produced it.
    """

    mask: np.ndarray
    score: float = 1.0
    labels: list[tuple[str, float]] = field(default_factory=list)
    alternatives: list[Candidate] = field(default_factory=list)
    memory: Any = None
    timings: dict[str, float] = field(default_factory=dict)
    backend: str = ""


@runtime_checkable
class SegmentationBackend(Protocol):
    """What the worker drives. Implementations: the SEEM predictor and the classical backend.

    Optional: ``prepare_next(candidate)``, work the object's next round will need, which the
    worker runs after delivering ``candidate`` when nothing more urgent is queued (SEEM: the
    memory stream of the answer).
    """

    name: str  # e.g. "seem:focalt_v1" or "classical"
    device: str  # "cpu", "cuda:0", "mps"

    def supports(self, prompt_kind: str) -> bool:
        """Whether this backend can answer prompts of this kind ("point", "box", "polygon",
        "stroke", "text", "voice", "referring", and "everything" for segment-everything)."""

    def encode(self, image: ImageInput) -> None:
        """Prepare (and cache) per-image work so later `predict` calls are cheap."""

    def predict(self, request: DecodeRequest) -> Candidate:
        """Answer one round. Raises ModelUnavailableError for unsupported prompt kinds."""

    def segment_everything(self, image: ImageInput, labels: tuple[str, ...]) -> list[Candidate]:
        """Labelled candidate masks for the whole image (for review, never auto-accepted)."""
