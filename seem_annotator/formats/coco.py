"""COCO instance segmentation: export a Dataset to one JSON file, import one into a Dataset.

Export: categories are the project labels (id = label id, so ids are stable across exports);
`images[].file_name` is relative to the project's images root (what detectron2, mmdetection and
`import coco --images ROOT` join it with), or to the output file's folder on request
(`--paths-relative-to-output`); width/height are the oriented
sizes; `area` and `bbox` come from the mask; `segmentation` is polygons when the mask has no holes
and the polygons rasterise back to IoU >= 0.98 (`PolygonDetail`), otherwise compressed RLE
(`iscrowd` stays 0; `rle=True` forces RLE). Fields kept from an earlier import (image `coco_id`,
`license`, category `supercategory`, annotation `attributes`, top-level `info`/`licenses`) are written
back.

Import: every check runs before the Dataset is returned, so a malformed file imports nothing.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from seem_annotator import __version__
from seem_annotator.core import masks
from seem_annotator.core.geometry import DEFAULT_DETAIL, PolygonDetail
from seem_annotator.core.records import AnnotationRecord, Dataset, ImageRecord, LabelRecord
from seem_annotator.errors import FormatError
from seem_annotator.formats import atomic
from seem_annotator.formats.base import Exporter, ExportResult, Importer, Progress, no_progress
from seem_annotator.formats.common import (
    check_int,
    default_color,
    image_path,
    oriented_size,
    read_json,
    relative_posix,
    resolve_inside,
)
from seem_annotator.formats.rle_crop import coco_polygons_from_rle

IMAGE_KEYS = {"id", "file_name", "width", "height"}
CATEGORY_KEYS = {"id", "name"}
ANNOTATION_KEYS = {"id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd", "score"}
TOP_KEYS = {"images", "annotations", "categories"}
RUNS_BATCH = 1000  # masks whose RLE runs are decoded together


# --------------------------------------------------------------------------------------------------
# export


def build_coco(dataset: Dataset, out_dir: Path | None = None, *, rle: bool = False,
               detail: PolygonDetail = DEFAULT_DETAIL, progress: Progress = no_progress,
               warnings: list[str] | None = None) -> dict[str, Any]:
    """The COCO dict of a dataset. Image file names are relative to the dataset's images root, or to
    `out_dir` when one is given."""
    warnings = warnings if warnings is not None else []
    top_extra = dict(dataset.extra.get("coco", {}))
    info = top_extra.pop("info", None) or {
        "description": "exported by seem-annotator",
        "version": __version__,
        "date_created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    licenses = top_extra.pop("licenses", [])
    images: list[dict[str, Any]] = []
    exported_ids: set[int] = set()
    for image in dataset.images:
        if image.width <= 0 or image.height <= 0:
            warnings.append(f"image {image.file_name} is unreadable and its size unknown; left out of the COCO file")
            continue
        if not image.readable:
            warnings.append(f"image {image.file_name} is currently unreadable; exported with its recorded size")
        file_name = relative_posix(image_path(dataset, image), out_dir) \
            if out_dir is not None and dataset.root else Path(image.file_name).as_posix()
        entry = {"id": image.id, "file_name": file_name, "width": image.width, "height": image.height}
        entry.update({k: v for k, v in image.extra.get("coco", {}).items() if k not in entry})
        images.append(entry)
        exported_ids.add(image.id)
    categories = []
    for label in sorted(dataset.labels, key=lambda lab: lab.id):
        entry = {"id": label.id, "name": label.name, "supercategory": ""}
        entry.update({k: v for k, v in label.extra.get("coco", {}).items() if k not in ("id", "name")})
        categories.append(entry)
    label_ids = {label.id for label in dataset.labels}
    sizes = {image.id: (image.height, image.width) for image in dataset.images}
    order = {image.id: i for i, image in enumerate(dataset.images)}
    annotations = []
    ordered = sorted(dataset.annotations, key=lambda a: (order.get(a.image_id, -1), a.order, a.id))
    runs: list = []
    for k, ann in enumerate(progress(ordered, len(ordered), "COCO annotations")):
        if k % RUNS_BATCH == 0 and not rle:
            # run lengths for the next batch of masks in one vectorised pass (see formats.rle_crop)
            runs = masks.rle_runs_batch([masks.normalize(a.rle) if isinstance(a.rle.get("counts"), list) else a.rle
                                   for a in ordered[k:k + RUNS_BATCH]])
        if ann.image_id not in exported_ids:
            warnings.append(f"annotation {ann.id} is on an image left out; not exported")
            continue
        if ann.label_id not in label_ids:
            raise FormatError(f"annotation {ann.id} has label id {ann.label_id}, which is not a project label")
        entry = _annotation_entry(ann, sizes[ann.image_id], rle, detail, runs[k % RUNS_BATCH] if runs else None)
        if entry is None:
            warnings.append(f"annotation {ann.id} has an empty mask; left out of the COCO file")
            continue
        annotations.append(entry)
    coco: dict[str, Any] = {"info": info, "licenses": licenses, "images": images,
                            "annotations": annotations, "categories": categories}
    coco.update({k: v for k, v in top_extra.items() if k not in coco})
    return coco


def _annotation_entry(ann: AnnotationRecord, size: tuple[int, int], force_rle: bool,
                      detail: PolygonDetail, runs: Any = None) -> dict[str, Any] | None:
    coco_rle = masks.normalize(ann.rle) if isinstance(ann.rle.get("counts"), list) else ann.rle
    if [int(v) for v in coco_rle["size"]] != [size[0], size[1]]:
        raise FormatError(f"annotation {ann.id}: mask size {list(coco_rle['size'])} does not match its image "
                          f"({size[0]}x{size[1]} rows x columns)")
    area = int(mask_utils.area(coco_rle))
    if area == 0:
        return None
    box = [float(v) for v in mask_utils.toBbox(coco_rle)]
    segmentation: Any = None
    if not force_rle and not ann.iscrowd:
        segmentation = coco_polygons_from_rle(coco_rle, detail, box, area, runs)
    if segmentation is None:
        counts = coco_rle["counts"]
        segmentation = {"size": [size[0], size[1]],
                        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}
    entry: dict[str, Any] = {"id": ann.id, "image_id": ann.image_id, "category_id": ann.label_id,
                             "segmentation": segmentation, "area": float(area), "bbox": box,
                             "iscrowd": int(ann.iscrowd)}
    if ann.score is not None:
        entry["score"] = float(ann.score)
    # Provenance as extra keys (pycocotools ignores them): who made it, and whether it is an
    # unreviewed proposal (exported only on request).
    if ann.provenance:
        entry["source"] = ann.provenance
    if ann.source.get("proposal"):
        entry["proposal"] = True
    extra = ann.extra.get("coco")
    if extra:
        entry.update({k: v for k, v in extra.items() if k not in entry})
    return entry


def export_coco(dataset: Dataset, out: str | Path, *, rle: bool = False,
                detail: PolygonDetail = DEFAULT_DETAIL, progress: Progress = no_progress,
                indent: int | None = None, relative_to_output: bool = False) -> ExportResult:
    """Write the dataset as one COCO JSON file, atomically (file names relative to the images root,
    or to the file's folder with `relative_to_output`)."""
    out = Path(out)
    if out.is_dir():
        raise FormatError(f"--out {out} is a folder; COCO export writes one .json file")
    warnings: list[str] = []
    coco = build_coco(dataset, out.parent if relative_to_output else None, rle=rle, detail=detail,
                      progress=progress, warnings=warnings)
    atomic.write_json(out, coco, indent=indent)
    return ExportResult(files=[out], warnings=warnings,
                        counts={"images": len(coco["images"]), "annotations": len(coco["annotations"]),
                                "categories": len(coco["categories"])})


# --------------------------------------------------------------------------------------------------
# import


def _list(data: dict, key: str, where: str) -> list:
    if key not in data:
        raise FormatError(f"{where} has no '{key}' list; is it a COCO instances file?")
    value = data[key]
    if not isinstance(value, list):
        raise FormatError(f"{where}: '{key}' must be a list, got {type(value).__name__}")
    return value


def _field(entry: Any, key: str, what: str) -> Any:
    if not isinstance(entry, dict):
        raise FormatError(f"{what} must be a JSON object, got {type(entry).__name__}")
    if key not in entry:
        raise FormatError(f"{what} has no '{key}'")
    return entry[key]


def _segmentation_rle(seg: Any, height: int, width: int, what: str) -> dict:
    """Compressed RLE (str counts) of a COCO segmentation (polygons, compressed or uncompressed RLE)."""
    if isinstance(seg, list):
        if seg and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in seg):
            seg = [seg]  # a single flat polygon, written by some tools without the outer list
        polys = []
        for poly in seg:
            if (not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in poly)):
                raise FormatError(f"{what}: a polygon must be a list of at least 3 x, y number pairs")
            polys.append([float(v) for v in poly])
        if not polys:
            raise FormatError(f"{what} has an empty segmentation (boxes only?); seem-annotator imports masks")
        return masks.normalize(mask_utils.merge(mask_utils.frPyObjects(polys, height, width)))
    if isinstance(seg, dict):
        size = seg.get("size")
        counts = seg.get("counts")
        if (not isinstance(size, list) or len(size) != 2
                or [check_int(v, f"{what} RLE size") for v in size] != [height, width]):
            raise FormatError(f"{what}: RLE size {size!r} does not match its image ({height} rows x {width} "
                              "columns)")
        if isinstance(counts, list):
            if (not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts)
                    or sum(counts) != height * width):
                raise FormatError(f"{what}: uncompressed RLE counts must be non-negative integers summing to "
                                  f"{height * width}")
            return masks.normalize({"size": [height, width], "counts": counts})
        if isinstance(counts, str) and counts:
            # Validated with numpy before pycocotools sees it: pycocotools' decoder trusts the run
            # lengths and would write past its buffer for a string describing too many pixels.
            raw = np.frombuffer(counts.encode("utf-8"), dtype=np.uint8)
            if ((raw < 48) | (raw > 111)).any() or raw[-1] >= 48 + 32:
                raise FormatError(f"{what}: RLE counts are not a valid compressed RLE string")
            runs = masks.rle_runs({"size": [height, width], "counts": counts})
            if (runs < 0).any() or int(runs.sum()) != height * width:
                raise FormatError(f"{what}: RLE counts do not describe a {height}x{width} mask")
            return masks.normalize({"size": [height, width], "counts": counts})
        raise FormatError(f"{what}: RLE 'counts' must be a string or a list of integers")
    raise FormatError(f"{what}: 'segmentation' must be polygons or an RLE object")


def parse_coco(data: Any, images_root: Path, *, source: str = "COCO file", check_files: bool = True,
               progress: Progress = no_progress) -> Dataset:
    """Validate a parsed COCO dict into a Dataset whose root is `images_root`."""
    if not isinstance(data, dict):
        raise FormatError(f"{source} must hold a JSON object with images, annotations and categories")
    raw_images = _list(data, "images", source)
    raw_categories = _list(data, "categories", source)
    raw_annotations = _list(data, "annotations", source)
    images: list[ImageRecord] = []
    names: dict[str, int] = {}
    missing: list[str] = []
    for i, entry in enumerate(raw_images):
        what = f"{source}: images[{i}]"
        image_id = check_int(_field(entry, "id", what), f"{what} id")
        file_name = _field(entry, "file_name", what)
        full, rel = resolve_inside(images_root, file_name, f"{what} (id {image_id})")
        width = check_int(_field(entry, "width", what), f"{what} width", positive=True)
        height = check_int(_field(entry, "height", what), f"{what} height", positive=True)
        if rel in names:
            raise FormatError(f"{source}: images {names[rel]} and {image_id} have the same file_name '{rel}'")
        names[rel] = image_id
        if check_files:
            if not full.is_file():
                missing.append(rel)
            else:
                actual = oriented_size(full)
                if actual is not None and actual != (width, height):
                    raise FormatError(f"{what} '{rel}' is {actual[0]}x{actual[1]} after EXIF orientation but "
                                      f"the file says {width}x{height}; nothing was imported")
        extra = {k: v for k, v in entry.items() if k not in IMAGE_KEYS}
        images.append(ImageRecord(id=image_id, file_name=rel, width=width, height=height,
                                  extra={"coco": extra} if extra else {}))
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise FormatError(f"{source}: image file '{missing[0]}'{more} not found under {images_root}; "
                          "nothing was imported")
    _unique([im.id for im in images], f"{source}: image id")
    labels: list[LabelRecord] = []
    for i, entry in enumerate(raw_categories):
        what = f"{source}: categories[{i}]"
        cat_id = check_int(_field(entry, "id", what), f"{what} id")
        name = _field(entry, "name", what)
        if not isinstance(name, str) or not name.strip():
            raise FormatError(f"{what} has an empty name")
        extra = {k: v for k, v in entry.items() if k not in CATEGORY_KEYS}
        labels.append(LabelRecord(id=cat_id, name=name.strip(), color=default_color(len(labels)),
                                  extra={"coco": extra} if extra else {}))
    _unique([lab.id for lab in labels], f"{source}: category id")
    _unique([lab.name.casefold() for lab in labels], f"{source}: category name")
    by_image = {im.id: im for im in images}
    label_ids = {lab.id for lab in labels}
    annotations: list[AnnotationRecord] = []
    order: dict[int, int] = {}
    now = time.time()
    for i, entry in enumerate(progress(raw_annotations, len(raw_annotations), "COCO annotations")):
        what = f"{source}: annotations[{i}]"
        ann_id = check_int(_field(entry, "id", what), f"{what} id")
        what = f"{what} (id {ann_id})"
        image_id = check_int(_field(entry, "image_id", what), f"{what} image_id")
        if image_id not in by_image:
            raise FormatError(f"{what} refers to image {image_id}, which is not in the images list")
        cat_id = check_int(_field(entry, "category_id", what), f"{what} category_id")
        if cat_id not in label_ids:
            raise FormatError(f"{what} has category_id {cat_id}, which is not in the categories list")
        image = by_image[image_id]
        rle = _segmentation_rle(_field(entry, "segmentation", what), image.height, image.width, what)
        iscrowd = check_int(entry.get("iscrowd", 0), f"{what} iscrowd")
        if iscrowd not in (0, 1):
            raise FormatError(f"{what} iscrowd must be 0 or 1, got {iscrowd}")
        score = entry.get("score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
            raise FormatError(f"{what} score must be a number")
        provenance = entry.get("source") if isinstance(entry.get("source"), str) else None
        extra = {k: v for k, v in entry.items() if k not in ANNOTATION_KEYS and not (k == "source" and provenance)}
        annotations.append(AnnotationRecord(
            id=ann_id, image_id=image_id, label_id=cat_id, rle=rle, iscrowd=iscrowd,
            score=None if score is None else float(score), order=order.get(image_id, 0),
            source={"imported": "coco", "file": source}, extra={"coco": extra} if extra else {},
            created_at=now, updated_at=now, provenance=provenance))
        order[image_id] = order.get(image_id, 0) + 1
    _unique([a.id for a in annotations], f"{source}: annotation id")
    top = {k: v for k, v in data.items() if k not in TOP_KEYS}
    return Dataset(images=images, labels=labels, annotations=annotations, root=str(images_root),
                   extra={"coco": top} if top else {})


def _unique(values: list, what: str) -> None:
    seen: set = set()
    for value in values:
        if value in seen:
            raise FormatError(f"{what} {value!r} appears more than once")
        seen.add(value)


def read_coco(path: str | Path, images_root: str | Path, *, check_files: bool = True,
              progress: Progress = no_progress) -> Dataset:
    """Read and fully validate a COCO instances file; FormatError (nothing returned) when malformed."""
    path, root = Path(path), Path(images_root)
    if not root.is_dir():
        raise FormatError(f"the images folder {root} does not exist")
    data = read_json(path, "COCO file")
    return parse_coco(data, root, source=path.name, check_files=check_files, progress=progress)


# --------------------------------------------------------------------------------------------------
# plugin registration


class CocoExporter(Exporter):
    name = "coco"
    description = "COCO instances JSON (polygons where exact enough, RLE otherwise)"
    output = "file"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--rle", action="store_true", help="write every mask as compressed RLE")
        parser.add_argument("--polygon-tolerance", type=float, default=DEFAULT_DETAIL.tolerance,
                            metavar="PX", help="polygon simplification tolerance in pixels "
                            f"(default {DEFAULT_DETAIL.tolerance}; 0 = exact pixel outline)")
        parser.add_argument("--indent", type=int, default=None, help="pretty-print the JSON")
        parser.add_argument("--paths-relative-to-output", action="store_true",
                            help="write images[].file_name relative to the JSON file's folder "
                            "(default: relative to the images folder)")

    def images_root_note(self, images_root: Path) -> str:
        """Which folder a reader of the export must join file names with (shown by the export dialog)."""
        return (f"images[].file_name is relative to the images folder {images_root}: pass that folder as "
                "the image root (--images for 'seem-annotator import coco', img_prefix/image_root in "
                "training tools). Tick the option above to make names relative to the JSON file instead.")

    def export(self, dataset: Dataset, out: Path, options: dict[str, Any],
               progress: Progress = no_progress) -> ExportResult:
        tolerance = options.get("polygon_tolerance", DEFAULT_DETAIL.tolerance)
        if tolerance is None or tolerance < 0:
            raise FormatError("--polygon-tolerance must be 0 or more pixels")
        return export_coco(dataset, out, rle=bool(options.get("rle")),
                           detail=PolygonDetail(tolerance=tolerance), progress=progress,
                           indent=options.get("indent"),
                           relative_to_output=bool(options.get("paths_relative_to_output")))


class CocoImporter(Importer):
    name = "coco"
    description = "COCO instances JSON (polygons, compressed or uncompressed RLE)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--images", required=True, metavar="DIR",
                            help="folder that images[].file_name is relative to")

    def read(self, source: Path, options: dict[str, Any], progress: Progress = no_progress) -> Dataset:
        images = options.get("images")
        if not images:
            raise FormatError("COCO import needs --images DIR (the folder file names are relative to)")
        return read_coco(source, images, progress=progress)


def register(registry: Any) -> None:
    registry.add_exporter(CocoExporter())
    registry.add_importer(CocoImporter())
