"""The plain data that travels between the driver and the engines (threads here, Ray processes
elsewhere): picklable, no torch tensors, no store handles."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ImageTask:
    """One image to annotate. `path` is where a worker on this machine reads it; `data` holds the
    file's bytes when the driver ships them (a worker that cannot see `path`). `seed` seeds every
    random choice for this image (`RunSettings.image_seed`)."""

    image_id: int
    file_name: str
    path: str
    seed: int
    data: bytes | None = None


@dataclass
class Proposal:
    """One proposed object: `rle` is a COCO compressed RLE (`counts` str, `size` [h, w] at the
    image's full oriented resolution), `bbox` its [x, y, w, h]. `mode` is the mode that made it."""

    label: str
    score: float
    mode: str
    rle: dict
    bbox: list[float]


@dataclass
class ImageResult:
    """What an engine gives back for one task: the proposals (already deduplicated among
    themselves), or `error` (one line) when the image could not be annotated. `timings` are
    seconds per stage (read, encode, decode, finish); `worker` names the Ray worker that made it
    ("host:pid"; None locally)."""

    image_id: int
    proposals: list[Proposal] = field(default_factory=list)
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    worker: str | None = None
