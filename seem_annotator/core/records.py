"""Plain records that cross module boundaries: the project store hands them out, the formats read
and write them, the GUI shows them. No behaviour beyond small conveniences.

A `Dataset` is a self-contained snapshot (images, labels, annotations) with no link to a store:
exporters take one, importers produce one (fully validated before anything is written), and
`Project.import_dataset` adds one in a single transaction.

Masks are COCO compressed RLE dicts `{"size": [h, w], "counts": str}` at the image's oriented
full resolution (pycocotools' `counts` bytes decoded as ASCII so they are JSON-ready).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RGB = tuple[int, int, int]


@dataclass
class ImageRecord:
    """One image of a project.

    `file_name` is a POSIX path relative to the project's images root. `width`/`height` are after
    EXIF orientation. `sha256` is of the file bytes (None when unreadable or not yet hashed).
    `status` is one of "untouched", "in_progress", "done"; `readable` False marks a file that
    could not be decoded (`error` says why).
    """

    id: int
    file_name: str
    width: int
    height: int
    sha256: str | None = None
    status: str = "untouched"
    readable: bool = True
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class LabelRecord:
    """A label (category). `id` is stable for the life of the project and is the COCO category id
    on export. `shortcut` is an optional keyboard digit 1..9."""

    id: int
    name: str
    color: RGB
    shortcut: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class AnnotationRecord:
    """An accepted object: a labelled mask on one image.

    `order` is the z-order within the image (higher draws on top). `source` records how it was made
    (prompts as dicts, backend, rounds count, "imported:coco" ...). `extra` keeps format-specific
    fields that must survive a round trip (LabelMe `group_id`, `description`, `flags`, unknown keys;
    COCO `attributes` ...). Timestamps are UNIX seconds. `provenance` says who made it:
    "interactive", "imported:<format>" or "run:<id>/<mode>" (an accepted proposal; `score` is the
    model's), with `reviewed_by`/`reviewed_at` the person who accepted it and when (None = unknown).
    """

    id: int
    image_id: int
    label_id: int
    rle: dict
    score: float | None = None
    iscrowd: int = 0
    order: int = 0
    source: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    provenance: str | None = None
    reviewed_by: str | None = None
    reviewed_at: float | None = None


@dataclass
class Dataset:
    """A self-contained snapshot of images, labels and annotations.

    Ids are unique within the dataset; on import the project assigns its own ids and remaps.
    `root` is the folder `ImageRecord.file_name` is relative to (may be None for pure data).
    `extra` keeps top-level fields of the source format (COCO `info`, `licenses`, ...).
    """

    images: list[ImageRecord] = field(default_factory=list)
    labels: list[LabelRecord] = field(default_factory=list)
    annotations: list[AnnotationRecord] = field(default_factory=list)
    root: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def label_by_id(self) -> dict[int, LabelRecord]:
        return {label.id: label for label in self.labels}

    def image_by_id(self) -> dict[int, ImageRecord]:
        return {image.id: image for image in self.images}

    def annotations_of(self, image_id: int) -> list[AnnotationRecord]:
        return sorted((a for a in self.annotations if a.image_id == image_id), key=lambda a: a.order)
