"""LabelMe import (a folder of labelme JSON files) and the LabelMe exporter/importer plugins.

Every file is parsed and checked before the Dataset is returned, so a bad file imports nothing.
Images are found like labelme does: `imagePath` relative to the JSON file, else the JSON's folder
with the path's base name; they must lie inside the images root (`--images`, default: the imported
folder), so JSON files written elsewhere (our export, labelme's `--output`) import too.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from seem_annotator.core import masks
from seem_annotator.core.geometry import DEFAULT_DETAIL, PolygonDetail
from seem_annotator.core.records import AnnotationRecord, Dataset, ImageRecord, LabelRecord
from seem_annotator.errors import FormatError
from seem_annotator.formats.base import Exporter, ExportResult, Importer, Progress, no_progress
from seem_annotator.formats.common import check_int, default_color, oriented_size, read_json
from seem_annotator.formats.labelme import META_KEY, TOP_KEYS, export_labelme, mask_sha, shape_mask


def label_files(root: Path) -> list[Path]:
    """The .json files under root that an import reads as LabelMe files, sorted, skipping hidden
    folders (e.g. the project store)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / f for f in sorted(filenames) if f.lower().endswith(".json")]
    return found


def _locate_image(root: Path, json_path: Path, image_path: Any, what: str) -> tuple[Path, str]:
    """(absolute path, path relative to `root`) of a file's image; FormatError when it is missing or
    lies outside `root` (the message names --images, the option that sets the root)."""
    if not isinstance(image_path, str) or not image_path.strip():
        raise FormatError(f"{what} has no imagePath (images embedded only as imageData are not imported)")
    given = image_path.replace("\\", "/")
    full = Path(os.path.normpath(json_path.parent / given))  # relative to the JSON (or absolute)
    if not _inside(full, root):
        raise FormatError(f"{what}: image '{image_path}' is {full}, outside the images folder {root}; pass the "
                          "folder that holds the images with --images ROOT. Nothing was imported")
    beside = json_path.parent / Path(given).name  # labelme's fallback: the base name beside the JSON
    for candidate in (full, beside):
        if candidate.is_file() and _inside(candidate, root):
            return candidate, candidate.relative_to(root).as_posix()
    raise FormatError(f"{what}: image '{image_path}' not found (looked for {full}); nothing was imported")


def _inside(path: Path, root: Path) -> bool:
    """Lexically inside `root` and not `root` itself (a symlink placed inside is followed like a folder)."""
    try:
        return bool(path.relative_to(root).parts)
    except ValueError:
        return False


class _Reader:
    """State of one folder import: labels by name, ids taken, records built. `folder` holds the JSON
    files, `root` the images."""

    def __init__(self, folder: Path, root: Path) -> None:
        self.folder = folder
        self.root = root
        self.labels: dict[str, LabelRecord] = {}
        self.images: list[ImageRecord] = []
        self.annotations: list[AnnotationRecord] = []
        self.image_ids: set[int] = set()
        self.ann_ids: set[int] = set()
        self.by_file: dict[str, str] = {}
        self.now = time.time()

    def label(self, name: str, meta: dict) -> LabelRecord:
        key = name.casefold()
        if key not in self.labels:
            info = meta.get(name) if isinstance(meta.get(name), dict) else {}
            wanted = info.get("id")
            used = {lab.id for lab in self.labels.values()}
            label_id = wanted if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted > 0 \
                and wanted not in used else max(used | {0}) + 1
            color = info.get("color")
            if not (isinstance(color, list) and len(color) == 3 and all(isinstance(c, int) and 0 <= c <= 255
                                                                         for c in color)):
                color = default_color(len(self.labels))
            self.labels[key] = LabelRecord(id=label_id, name=name, color=tuple(color))
        return self.labels[key]

    @staticmethod
    def _take(wanted: Any, used: set[int]) -> int:
        if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted > 0 and wanted not in used:
            value = wanted
        else:
            value = max(used | {0}) + 1
        used.add(value)
        return value

    def read_file(self, json_path: Path) -> bool:
        """Add one file's image and objects; False (nothing added) for a JSON file that is not a
        LabelMe file at all (no `shapes` and no `imagePath`, e.g. a COCO file in the same folder)."""
        what = str(json_path.relative_to(self.folder))
        doc = read_json(json_path, "LabelMe file")
        if not isinstance(doc, dict) or ("shapes" not in doc and "imagePath" not in doc):
            return False
        shapes = doc.get("shapes")
        if not isinstance(shapes, list):
            raise FormatError(f"{what} has no 'shapes' list; is it a LabelMe file?")
        full, rel = _locate_image(self.root, json_path, doc.get("imagePath"), what)
        if rel in self.by_file:
            raise FormatError(f"{what} and {self.by_file[rel]} both annotate image {rel}")
        self.by_file[rel] = what
        actual = oriented_size(full)
        width, height = doc.get("imageWidth"), doc.get("imageHeight")
        if width is None or height is None:
            if actual is None:
                raise FormatError(f"{what}: image {rel} cannot be read and the file gives no imageWidth/"
                                  "imageHeight")
            width, height = actual
        width = check_int(width, f"{what} imageWidth", positive=True)
        height = check_int(height, f"{what} imageHeight", positive=True)
        if actual is not None and actual != (width, height):
            raise FormatError(f"{what}: image {rel} is {actual[0]}x{actual[1]} after EXIF orientation but the "
                              f"file says {width}x{height}; nothing was imported")
        meta = doc.get(META_KEY) if isinstance(doc.get(META_KEY), dict) else {}
        label_meta = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
        for name in label_meta:  # labels the exporting project had, used here or not
            if isinstance(name, str) and name.strip():
                self.label(name.strip(), label_meta)
        image_id = self._take(meta.get("image_id"), self.image_ids)
        groups: dict[tuple[str, Any], list[tuple[dict, np.ndarray]]] = {}
        order: list[tuple[str, Any]] = []
        other: list[dict] = []
        for i, shape in enumerate(shapes):
            swhat = f"{what} shapes[{i}]"
            if not isinstance(shape, dict):
                raise FormatError(f"{swhat} must be a JSON object")
            label = shape.get("label")
            if not isinstance(label, str) or not label.strip():
                raise FormatError(f"{swhat} has no label")
            mask = shape_mask(shape, height, width, swhat)
            if mask is None or not mask.any():
                other.append(shape)  # no area (point, line, degenerate polygon): kept as it was
                continue
            group = shape.get("group_id")
            key = (label.strip(), group if group is not None else ("single", i))
            if key not in groups:
                groups[key] = []
                order.append(key)
            groups[key].append((shape, mask))
        for z, key in enumerate(order):
            parts = groups[key]
            union = parts[0][1].copy()
            for _, mask in parts[1:]:
                union |= mask
            rle = masks.encode(union)
            label = self.label(key[0], label_meta)
            kept = [{k: v for k, v in shape.items() if k != META_KEY} for shape, _ in parts]
            own = parts[0][0].get(META_KEY) if isinstance(parts[0][0].get(META_KEY), dict) else {}
            score = own.get("score")
            self.annotations.append(AnnotationRecord(
                id=self._take(own.get("id"), self.ann_ids), image_id=image_id, label_id=label.id, rle=rle,
                score=float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None,
                order=z, source={"imported": "labelme", "file": what},
                provenance=own.get("source") if isinstance(own.get("source"), str) else None,
                extra={"labelme": {"shapes": kept, "mask_sha": mask_sha(rle)}},
                created_at=self.now, updated_at=self.now))
        saved: dict[str, Any] = {"flags": doc.get("flags") if isinstance(doc.get("flags"), dict) else {}}
        if isinstance(doc.get("version"), str):
            saved["version"] = doc["version"]
        keys = {k: v for k, v in doc.items() if k not in TOP_KEYS and k != META_KEY}
        if keys:
            saved["keys"] = keys
        if other:
            saved["other_shapes"] = other
        self.images.append(ImageRecord(id=image_id, file_name=rel, width=width, height=height,
                                       extra={"labelme": saved}))
        return True


def read_labelme_folder(folder: str | Path, progress: Progress = no_progress,
                        images_root: str | Path | None = None) -> Dataset:
    """Read every labelme JSON under `folder` into one validated Dataset whose root is `images_root`
    (default: `folder`); every image must lie inside that root."""
    folder = Path(os.path.abspath(folder))
    if not folder.is_dir():
        raise FormatError(f"the LabelMe folder {folder} does not exist")
    root = folder if images_root is None else Path(os.path.abspath(images_root))
    if not root.is_dir():
        raise FormatError(f"the images folder {root} (--images) does not exist")
    files = label_files(folder)
    if not files:
        raise FormatError(f"no LabelMe .json files found under {folder}")
    reader = _Reader(folder, root)
    skipped = [str(p.relative_to(folder)) for p in progress(files, len(files), "LabelMe files")
               if not reader.read_file(p)]
    if not reader.images:
        raise FormatError(f"no LabelMe files under {folder} (the .json files there are not LabelMe files)")
    extra = {"warnings": [f"{name} is not a LabelMe file; skipped" for name in skipped]} if skipped else {}
    return Dataset(images=reader.images, labels=sorted(reader.labels.values(), key=lambda lab: lab.id),
                   annotations=reader.annotations, root=str(root), extra=extra)


class LabelmeExporter(Exporter):
    name = "labelme"
    description = "LabelMe JSON per image (polygons; objects with holes as mask shapes)"
    output = "dir"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--holes-as-polygons", action="store_true",
                            help="write objects with holes as polygons that lose the holes (warns)")
        parser.add_argument("--image-data", action="store_true", help="embed the image (base64) in each file")
        parser.add_argument("--polygon-tolerance", type=float, default=DEFAULT_DETAIL.tolerance, metavar="PX",
                            help=f"polygon simplification in pixels (default {DEFAULT_DETAIL.tolerance})")

    def export(self, dataset: Dataset, out: Path, options: dict[str, Any],
               progress: Progress = no_progress) -> ExportResult:
        tolerance = options.get("polygon_tolerance", DEFAULT_DETAIL.tolerance)
        if tolerance is None or tolerance < 0:
            raise FormatError("--polygon-tolerance must be 0 or more pixels")
        return export_labelme(dataset, out, holes="polygons" if options.get("holes_as_polygons") else "mask",
                              image_data=bool(options.get("image_data")),
                              detail=PolygonDetail(tolerance=tolerance), progress=progress)


class LabelmeImporter(Importer):
    name = "labelme"
    description = "a folder of LabelMe JSON files (with their images)"
    source = "dir"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--images", metavar="ROOT", default=None,
                            help="folder the images are in (default: the LabelMe folder itself); needed when "
                            "the JSON files were written elsewhere, e.g. by 'export labelme --out DIR'")

    def read(self, source: Path, options: dict[str, Any], progress: Progress = no_progress) -> Dataset:
        return read_labelme_folder(source, progress, images_root=options.get("images"))
