"""What a run is asked to do: modes, labels, thresholds, model identity. Stored with the run.

`RunSettings.key()` identifies a run: running the same command again (same settings, same model
and checkpoint) resumes the run with that key instead of starting another one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from seem_annotator.errors import UserError

MODES: tuple[str, ...] = ("everything", "text", "exemplar")
DEFAULT_THRESHOLD = 0.3
DEFAULT_SUPPRESS_IOU = 0.7


def parse_modes(text: str) -> tuple[str, ...]:
    """"everything,text" -> ("everything", "text") in the canonical order; unknown modes refused."""
    modes = [m.strip().lower() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise UserError(f"Unknown annotation mode {', '.join(unknown) or repr(text)}; use any of "
                        f"{', '.join(MODES)} separated by commas.")
    return tuple(m for m in MODES if m in modes)


def split_phrase(phrase: str) -> tuple[str, str]:
    """A `--phrases` entry "a red car=car" -> ("a red car", "car"); without "=" the phrase is its
    own label."""
    text, _, label = phrase.partition("=")
    text = text.strip()
    return text, (label.strip() or text)


@dataclass(frozen=True)
class ExemplarSelection:
    """Which accepted annotations serve as exemplars: those with one of `labels` (every label
    when empty) on the images `image_ids` (every image when empty), plus `annotation_ids`
    chosen one by one (e.g. regions marked in the app)."""

    labels: tuple[str, ...] = ()
    image_ids: tuple[int, ...] = ()
    annotation_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class RunSettings:
    """Everything that decides a run's answers.

    modes: a subset of MODES. labels: the label list that names proposals (everything, exemplar)
    and whose names are grounded (text, unless `phrases` are given). phrases: grounding phrases,
    "phrase" or "phrase=label". threshold: minimum score of text and exemplar proposals.
    labels_only: everything keeps only segments labelled from `labels` (no "unknown").
    suppress_iou: a proposal overlapping an accepted annotation, or an earlier proposal of its
    label, at this mask IoU or more is not added. seed: base of the per-image seeds.
    model: the model name or config path; checkpoint_sha256: of the weights (None = random
    weights, benchmarks only).
    """

    modes: tuple[str, ...] = ("everything",)
    labels: tuple[str, ...] = ()
    phrases: tuple[str, ...] = ()
    threshold: float = DEFAULT_THRESHOLD
    labels_only: bool = False
    suppress_iou: float = DEFAULT_SUPPRESS_IOU
    exemplars: ExemplarSelection = field(default_factory=ExemplarSelection)
    seed: int = 0
    model: str = ""
    checkpoint_sha256: str | None = None
    short_side: int = 512
    max_side: int = 1333

    def __post_init__(self) -> None:
        for name in ("modes", "labels", "phrases"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if isinstance(self.exemplars, dict):
            object.__setattr__(self, "exemplars", ExemplarSelection(
                **{k: tuple(v) for k, v in self.exemplars.items()}))

    def validate(self) -> None:
        """One clear line for settings that cannot give a run."""
        bad = [m for m in self.modes if m not in MODES]
        if not self.modes or bad:
            raise UserError(f"Unknown annotation mode {', '.join(bad) or '(none)'}; use any of {', '.join(MODES)}.")
        if "text" in self.modes and not (self.labels or self.phrases):
            raise UserError("The text mode needs labels to ground: pass --labels a,b,c (or --phrases), "
                            "or add labels to the project.")
        if self.labels_only and not self.labels:
            raise UserError("Keeping only listed labels needs a label list: pass --labels a,b,c.")
        if not 0.0 <= self.threshold <= 1.0:
            raise UserError(f"The score threshold must be between 0 and 1, got {self.threshold}.")
        if not 0.0 < self.suppress_iou <= 1.0:
            raise UserError(f"The suppression IoU must be in (0, 1], got {self.suppress_iou}.")

    def grounding_phrases(self) -> list[tuple[str, str]]:
        """(phrase, label) pairs the text mode grounds."""
        if self.phrases:
            return [split_phrase(p) for p in self.phrases if p.strip()]
        return [(name, name) for name in self.labels]

    def image_seed(self, image_id: int) -> int:
        """The seed of one image's random choices: the same image gives the same answer in any
        engine, in any order, after any resume."""
        return (int(self.seed) * 1_000_003 + int(image_id)) % (2 ** 31)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["exemplars"] = {k: list(v) for k, v in data["exemplars"].items()}
        for name in ("modes", "labels", "phrases"):
            data[name] = list(data[name])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def key(self) -> str:
        """Hex digest identifying the run these settings make."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:32]
