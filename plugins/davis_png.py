"""DAVIS-style export of sequences: one indexed PNG per frame, pixel = track id.

    OUT/<sequence>/<frame index, 5 digits>.png   palette PNG ("P" mode, the DAVIS/PASCAL palette):
                                                 0 background, N = the object of track N
    OUT/<sequence>/objects.json                  track id -> label name

Every frame of a sequence gets a PNG (an empty one where no track has a mask), as DAVIS readers
expect. Where tracks overlap the one on top wins. Plain images (not frames) are not exported.
Needs the sequence fields the project adds to its snapshot (core.video_fields).
"""

from __future__ import annotations

import io
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from seem_annotator.core import masks
from seem_annotator.core.records import Dataset
from seem_annotator.errors import FormatError
from seem_annotator.formats import atomic
from seem_annotator.formats.base import Exporter, ExportResult, Progress, no_progress

MAX_OBJECTS = 255


def davis_palette() -> list[int]:
    """The DAVIS/PASCAL VOC colour map: index bits spread over the high bits of R, G, B."""
    out = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out += [r, g, b]
    return out


def _png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


class DavisExporter(Exporter):
    name = "davis"
    description = "DAVIS-style indexed PNG per frame of each sequence (pixel = track id)"
    output = "dir"

    def export(self, dataset: Dataset, out: Any, options: dict[str, Any],
               progress: Progress = no_progress) -> ExportResult:
        videos = {v["id"]: v["name"] for v in dataset.extra.get("coco", {}).get("videos", [])}
        if not videos:
            raise FormatError("the project has no sequences; import a video or a frames folder first")
        labels = dataset.label_by_id()
        palette = davis_palette()
        counts = {"frames": 0, "sequences": len(videos)}
        objects: dict[str, dict[str, str]] = {name: {} for name in videos.values()}
        with atomic.StagedFolder(out) as stage:
            for image in progress(dataset.images, len(dataset.images), "DAVIS frames"):
                coco = image.extra.get("coco", {})
                if coco.get("video_id") not in videos or image.width <= 0:
                    continue
                name = videos[coco["video_id"]]
                index = np.zeros((image.height, image.width), np.uint8)
                for ann in dataset.annotations_of(image.id):
                    track = ann.extra.get("coco", {}).get("track_id")
                    if track is None:
                        continue
                    if not 0 < int(track) <= MAX_OBJECTS:
                        raise FormatError(f"track {track} does not fit an 8-bit DAVIS frame (ids 1..{MAX_OBJECTS})")
                    index[masks.decode(ann.rle)] = int(track)
                    objects[name][str(track)] = labels[ann.label_id].name if ann.label_id in labels else ""
                img = Image.frombytes("P", (image.width, image.height), index.tobytes())
                img.putpalette(palette)
                stage.write(PurePosixPath(name) / f"{int(coco['frame_index']):05d}.png", _png(img))
                counts["frames"] += 1
            for name, table in objects.items():
                stage.write(PurePosixPath(name) / "objects.json", atomic.dumps_json(table, indent=2))
            written = stage.commit()
        return ExportResult(files=written, counts=counts)


def register(registry: Any) -> None:
    registry.add_exporter(DavisExporter())
