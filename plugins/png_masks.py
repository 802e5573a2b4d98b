"""PNG mask export: a semantic label map, an instance map and the colour palette, per image.

    OUT/semantic/<stem>.png    palette PNG: pixel = class index (0 background, 1..K the labels in
                               label-id order), palette = the label colours (opens coloured anywhere)
    OUT/instances/<stem>.png   16-bit grey PNG: pixel = instance number 1..N in z-order (later objects
                               painted over earlier ones), 0 background
    OUT/palette.json           class index -> label id, name, colour
    OUT/instances.json         per image: instance number -> annotation id, label id, class index

Where objects overlap the one on top wins in both maps.
"""

from __future__ import annotations

import io
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from seem_annotator.core import masks
from seem_annotator.core.records import Dataset, ImageRecord
from seem_annotator.errors import FormatError
from seem_annotator.formats import atomic
from seem_annotator.formats.base import Exporter, ExportResult, Progress, no_progress

MAX_CLASSES = 255
MAX_INSTANCES = 65535


def _png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def maps_of(dataset: Dataset, image: ImageRecord, class_index: dict[int, int]
            ) -> tuple[np.ndarray, np.ndarray, list[dict[str, int]]]:
    """(semantic uint8 (H, W), instance uint16 (H, W), instance table) of one image."""
    semantic = np.zeros((image.height, image.width), dtype=np.uint8)
    instance = np.zeros((image.height, image.width), dtype=np.uint16)
    table = []
    anns = dataset.annotations_of(image.id)
    if len(anns) > MAX_INSTANCES:
        raise FormatError(f"{image.file_name} has {len(anns)} objects; a 16-bit instance map holds {MAX_INSTANCES}")
    for number, ann in enumerate(anns, 1):
        mask = masks.decode(ann.rle)
        if mask.shape != semantic.shape:
            raise FormatError(f"annotation {ann.id}: mask {mask.shape[1]}x{mask.shape[0]} on a "
                              f"{image.width}x{image.height} image")
        semantic[mask] = class_index[ann.label_id]
        instance[mask] = number
        table.append({"instance": number, "annotation_id": ann.id, "label_id": ann.label_id,
                      "class_index": class_index[ann.label_id]})
    return semantic, instance, table


class PngMasksExporter(Exporter):
    name = "png"
    description = "PNG masks: semantic label map + instance map + colour palette"
    output = "dir"

    def export(self, dataset: Dataset, out: Path, options: dict[str, Any],
               progress: Progress = no_progress) -> ExportResult:
        if out.exists() and not out.is_dir():
            raise FormatError(f"--out {out} is a file; PNG mask export writes a folder")
        labels = sorted(dataset.labels, key=lambda lab: lab.id)
        if len(labels) > MAX_CLASSES:
            raise FormatError(f"{len(labels)} labels do not fit an 8-bit semantic map ({MAX_CLASSES} at most)")
        class_index = {lab.id: i + 1 for i, lab in enumerate(labels)}
        palette = [0, 0, 0] + [c for lab in labels for c in lab.color]
        palette += [0] * (768 - len(palette))
        tables: dict[str, list[dict[str, int]]] = {}
        # staged: nothing appears in OUT until every map is written (and memory stays flat)
        with atomic.StagedFolder(out) as stage:
            for image in progress(dataset.images, len(dataset.images), "PNG masks"):
                if image.width <= 0 or image.height <= 0:  # unreadable and never measured
                    continue
                semantic, instance, table = maps_of(dataset, image, class_index)
                rel = PurePosixPath(image.file_name).with_suffix(".png")
                sem = Image.frombytes("P", (image.width, image.height), semantic.tobytes())
                sem.putpalette(palette)
                stage.write(PurePosixPath("semantic") / rel, _png(sem))
                stage.write(PurePosixPath("instances") / rel, _png(Image.fromarray(instance)))
                tables[image.file_name] = table
            legend = {"background": {"class_index": 0, "color": [0, 0, 0]},
                      "classes": [{"class_index": class_index[lab.id], "label_id": lab.id, "name": lab.name,
                                   "color": list(lab.color)} for lab in labels]}
            stage.write("palette.json", atomic.dumps_json(legend, indent=2))
            stage.write("instances.json", atomic.dumps_json(tables, indent=2))
            written = stage.commit()
        return ExportResult(files=written, counts={"images": len(tables), "classes": len(labels)})


def register(registry: Any) -> None:
    registry.add_exporter(PngMasksExporter())
