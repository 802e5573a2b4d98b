"""YOLO segmentation export (Ultralytics layout): `labels/*.txt` + `data.yaml`.

    OUT/data.yaml             path, train/val (the images folder), names {index: label}
    OUT/images/<file_name>    the project's images, hard-linked (or symlinked, or copied)
    OUT/labels/<stem>.txt     one line per object part: `class x1 y1 x2 y2 ...`, coordinates
                              divided by the image width/height (0..1)

Class indices are 0..K-1 in label-id order (`label_ids` in data.yaml maps them back). YOLO polygons
cannot carry holes, so an object's holes are dropped (counted in a warning); an object in several
parts is written as one line per part. Images without objects get an empty label file (background).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from seem_annotator.core import masks
from seem_annotator.core.geometry import DEFAULT_DETAIL, PolygonDetail, has_holes, mask_to_geometry
from seem_annotator.core.records import Dataset
from seem_annotator.errors import FormatError, UserError
from seem_annotator.formats import atomic
from seem_annotator.formats.base import Exporter, ExportResult, Progress, no_progress
from seem_annotator.formats.common import image_path


def place_image(src: Path, dst: Path, mode: str) -> None:
    """Put `src` at `dst` (atomically replacing it): a hard link, else a symlink, else a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", dir=dst.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        done = False
        if mode == "link":
            for make in (os.link, os.symlink):
                try:
                    make(os.path.abspath(src), tmp)
                    done = True
                    break
                except OSError:
                    continue
        if not done:
            shutil.copy2(src, tmp)
        os.replace(tmp, dst)
    except OSError as exc:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise UserError(f"cannot place image {src} at {dst}: {exc.strerror or exc}") from exc


def label_lines(dataset: Dataset, image_id: int, width: int, height: int, index: dict[int, int],
                detail: PolygonDetail) -> tuple[list[str], int]:
    """YOLO lines of one image's objects and how many objects lost holes."""
    lines, holed = [], 0
    for ann in dataset.annotations_of(image_id):
        mask = masks.decode(ann.rle)
        if mask.shape != (height, width):
            raise FormatError(f"annotation {ann.id}: mask {mask.shape[1]}x{mask.shape[0]} on a {width}x{height} image")
        holed += has_holes(mask)
        for part in mask_to_geometry(mask, detail).geoms:
            coords = list(part.exterior.coords)[:-1]
            if len(coords) < 3:
                continue
            values = " ".join(f"{x / width:.6f} {y / height:.6f}" for x, y in coords)
            lines.append(f"{index[ann.label_id]} {values}")
    return lines, holed


class YoloSegExporter(Exporter):
    name = "yolo"
    description = "YOLO segmentation (Ultralytics): labels/*.txt polygons + data.yaml"
    output = "dir"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--images", choices=("link", "copy", "none"), default="link", dest="yolo_images",
                            help="put the images under OUT/images as hard links/symlinks (default), copies, "
                                 "or not at all")

    def export(self, dataset: Dataset, out: Path, options: dict[str, Any],
               progress: Progress = no_progress) -> ExportResult:
        if out.exists() and not out.is_dir():
            raise FormatError(f"--out {out} is a file; YOLO export writes a folder")
        mode = options.get("yolo_images") or "link"
        labels = sorted(dataset.labels, key=lambda lab: lab.id)
        index = {lab.id: i for i, lab in enumerate(labels)}
        files: list[tuple[Path, bytes]] = []
        images: list[tuple[Path, Path]] = []
        holed = 0
        for image in progress(dataset.images, len(dataset.images), "YOLO labels"):
            if image.width <= 0 or image.height <= 0:  # unreadable and never measured
                continue
            lines, lost = label_lines(dataset, image.id, image.width, image.height, index, DEFAULT_DETAIL)
            holed += lost
            rel = PurePosixPath(image.file_name)
            files.append((out / "labels" / rel.with_suffix(".txt"), ("\n".join(lines) + "\n" if lines else "")
                          .encode("utf-8")))
            images.append((image_path(dataset, image), out / "images" / rel))
        data = {"path": str(out.resolve()), "train": "images", "val": "images",
                "names": {i: lab.name for i, lab in enumerate(labels)},
                "label_ids": {i: lab.id for i, lab in enumerate(labels)}}
        files.append((out / "data.yaml", yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode("utf-8")))
        written = atomic.write_files(files)
        if mode != "none":
            for src, dst in images:
                if src.is_file():
                    place_image(src, dst, mode)
        warnings = [f"{holed} object(s) have holes, which YOLO polygons cannot express; written without them"] \
            if holed else []
        return ExportResult(files=written, warnings=warnings,
                            counts={"label_files": len(written) - 1, "classes": len(labels)})


def register(registry: Any) -> None:
    registry.add_exporter(YoloSegExporter())
