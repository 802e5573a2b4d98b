"""LabelMe: one JSON per image, as labelme 5.x-7.x reads and writes it.

File layout: `version`, `flags`, `shapes`, `imagePath` (relative to the JSON file), `imageData`
(null unless asked for), `imageHeight`, `imageWidth` (after EXIF orientation), plus any unknown
top-level keys kept from an import. A shape has `label`, `points`, `group_id`, `description`,
`shape_type`, `flags` (and `mask` for mask shapes). Coordinates are pixel corners, as in COCO and
labelme's canvas.

Writing an object:
* unchanged since it was imported from LabelMe -> its original shapes, verbatim (unknown keys too);
* no holes -> one `polygon` per part; parts of one object share a `group_id`;
* holes -> one `mask` shape: `points` = [[x1, y1], [x2, y2]], the inclusive bounding box of the mask,
  and `mask` = base64 PNG (0/1, mode L) of that crop, which is how labelme stores masks; or, with
  `holes="polygons"`, polygons that lose the holes (a warning says which).

Reading: polygon, rectangle (2 corner points), circle (centre + rim point) and mask shapes become
mask annotations; shapes with the same label and a non-null `group_id` form one object. Shapes
without area (point, line, linestrip, ...) are kept on the image and written back unchanged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from seem_annotator.core import masks
from seem_annotator.core.geometry import DEFAULT_DETAIL, PolygonDetail, mask_to_geometry, rings_to_mask
from seem_annotator.core.geometry import has_holes as mask_has_holes
from seem_annotator.core.records import AnnotationRecord, Dataset, ImageRecord
from seem_annotator.errors import FormatError
from seem_annotator.formats import atomic
from seem_annotator.formats.base import ExportResult, Progress, no_progress
from seem_annotator.formats.common import image_path, relative_posix

LABELME_VERSION = "5.5.0"
TOP_KEYS = ("version", "flags", "shapes", "imagePath", "imageData", "imageHeight", "imageWidth")
META_KEY = "seem_annotator"  # our ids and label colours, an unknown key to labelme (it keeps those)
AREA_SHAPES = ("polygon", "rectangle", "circle", "mask")


def mask_sha(rle: dict) -> str:
    """Fingerprint of a mask, to know whether an imported object was edited since."""
    counts = masks.normalize(rle)["counts"]
    return hashlib.sha1(f"{rle['size'][0]}x{rle['size'][1]}:{counts}".encode("ascii")).hexdigest()


# --------------------------------------------------------------------------------------------------
# mask <-> shapes


def encode_mask_png(crop: np.ndarray) -> str:
    """base64 PNG (mode L, values 0/1) of a bool crop, as labelme stores mask shapes."""
    buffer = io.BytesIO()
    Image.fromarray(crop.astype(np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_mask_png(data: str, what: str) -> np.ndarray:
    """bool array of a base64 PNG mask (any mode: non-zero first channel is foreground)."""
    try:
        with Image.open(io.BytesIO(base64.b64decode(data))) as img:
            arr = np.asarray(img)
    except (binascii.Error, ValueError, OSError, Image.DecompressionBombError) as exc:
        raise FormatError(f"{what}: 'mask' is not a base64 PNG image ({exc})") from exc
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr > 0


def mask_shape(mask: np.ndarray) -> dict[str, Any] | None:
    """A labelme `mask` shape of a full-image bool mask (None when empty)."""
    box = masks.bounds(mask)
    if box is None:
        return None
    y0, y1, x0, x1 = box  # labelme's two points are the inclusive corners
    return {"points": [[float(x0), float(y0)], [float(x1 - 1), float(y1 - 1)]], "shape_type": "mask",
            "mask": encode_mask_png(mask[y0:y1, x0:x1])}


def shapes_of_mask(mask: np.ndarray, holes: str, detail: PolygonDetail) -> tuple[list[dict[str, Any]], bool]:
    """Geometry shapes (points, shape_type[, mask]) of a mask and whether holes were dropped."""
    geom = mask_to_geometry(mask, detail)
    parts = [p for p in geom.geoms if not p.is_empty]
    if not parts:
        return [], False
    has_holes = mask_has_holes(mask)  # on the mask itself: simplification must not hide a small hole
    if has_holes and holes == "mask":
        shape = mask_shape(mask)
        return ([shape] if shape else []), False
    if len(parts) == 1 and not has_holes:
        (x0, y0), (x1, y1) = np.floor(parts[0].bounds[:2]), np.ceil(parts[0].bounds[2:])
        if np.count_nonzero(mask) == (x1 - x0) * (y1 - y0):  # a filled box: labelme's own rectangle
            return [{"points": [[float(x0), float(y0)], [float(x1), float(y1)]], "shape_type": "rectangle"}], False
    shapes = [{"points": [[float(x), float(y)] for x, y in list(p.exterior.coords)[:-1]],
               "shape_type": "polygon"} for p in parts]
    return shapes, has_holes


def _points(shape: dict, what: str) -> np.ndarray:
    pts = shape.get("points")
    try:
        arr = np.asarray(pts, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.zeros((0,))
    if arr.ndim != 2 or arr.shape[1] != 2 or not np.isfinite(arr).all():
        raise FormatError(f"{what}: 'points' must be a list of [x, y] number pairs")
    return arr


def shape_mask(shape: dict, height: int, width: int, what: str) -> np.ndarray | None:
    """bool (H, W) mask of an area shape, None for shapes without area (point, line, ...)."""
    kind = shape.get("shape_type") or "polygon"
    if kind not in AREA_SHAPES:
        return None
    pts = _points(shape, what)
    if kind == "polygon":
        if len(pts) < 3:
            raise FormatError(f"{what}: a polygon needs at least 3 points, it has {len(pts)}")
        return rings_to_mask([pts], height, width)
    if len(pts) != 2:
        raise FormatError(f"{what}: a {kind} shape needs exactly 2 points, it has {len(pts)}")
    if kind == "rectangle":
        (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
        return rings_to_mask([[x0, y0, x1, y0, x1, y1, x0, y1]], height, width)
    if kind == "circle":
        (cx, cy), rim = pts
        radius = float(np.hypot(*(rim - pts[0])))
        angles = np.linspace(0, 2 * np.pi, 96, endpoint=False)
        ring = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)
        return rings_to_mask([ring], height, width)
    data = shape.get("mask")
    if not isinstance(data, str) or not data:
        raise FormatError(f"{what}: a mask shape needs a base64 PNG 'mask'")
    crop = decode_mask_png(data, what)
    x0, y0 = (int(round(v)) for v in pts.min(axis=0))
    out = np.zeros((height, width), dtype=bool)
    ys, xs = max(y0, 0), max(x0, 0)
    ye, xe = min(y0 + crop.shape[0], height), min(x0 + crop.shape[1], width)
    if ye > ys and xe > xs:
        out[ys:ye, xs:xe] = crop[ys - y0:ye - y0, xs - x0:xe - x0]
    return out


# --------------------------------------------------------------------------------------------------
# export


def _json_name(file_name: str, taken: set[str]) -> str:
    """`photos/a.jpg` -> `photos/a.json`; `photos/a.png.json` when `a.json` is already taken."""
    rel = Path(file_name)
    name = rel.with_suffix(".json").as_posix()
    if name.casefold() in taken:
        name = rel.with_name(rel.name + ".json").as_posix()
    taken.add(name.casefold())
    return name


def _image_data(path: Path) -> str:
    """base64 of the image as labelme embeds it: the file's bytes, or a PNG of the oriented pixels
    when EXIF would rotate it (labelme does not apply EXIF to embedded data)."""
    from PIL import ImageOps

    try:
        raw = path.read_bytes()
        with Image.open(io.BytesIO(raw)) as img:
            if img.getexif().get(0x0112, 1) in (1, None):
                return base64.b64encode(raw).decode("ascii")
            buffer = io.BytesIO()
            ImageOps.exif_transpose(img).save(buffer, format="PNG")
            return base64.b64encode(buffer.getvalue()).decode("ascii")
    except OSError as exc:
        raise FormatError(f"cannot embed image {path}: {exc}") from exc


def provenance_fields(ann: AnnotationRecord, template: dict[str, Any]) -> tuple[str, dict[str, bool]]:
    """A shape's (description, flags) with the provenance a person sees in labelme: a model-made
    object says "source=run:3/everything score=0.81" in its description (unless it has one of
    its own), and an unreviewed proposal has the flag "proposal" (labelme wants bool flags)."""
    description = template.get("description") or ""
    flags = dict(template.get("flags") or {})
    if not description and ann.provenance and ann.provenance.startswith("run:"):
        description = f"source={ann.provenance}" + ("" if ann.score is None else f" score={ann.score:.4f}")
    if ann.source.get("proposal"):
        flags["proposal"] = True
    return description, flags


def image_document(dataset: Dataset, image: ImageRecord, anns: list[AnnotationRecord], json_path: Path, *,
                   holes: str = "mask", image_data: bool = False, detail: PolygonDetail = DEFAULT_DETAIL,
                   warnings: list[str] | None = None) -> dict[str, Any]:
    """The labelme JSON dict of one image."""
    warnings = warnings if warnings is not None else []
    labels = dataset.label_by_id()
    saved = image.extra.get("labelme", {})
    shapes: list[dict[str, Any]] = []
    used_groups = {s.get("group_id") for a in anns for s in a.extra.get("labelme", {}).get("shapes", [])}
    next_group = max([g for g in used_groups if isinstance(g, int)] + [0]) + 1
    for ann in anns:
        label = labels.get(ann.label_id)
        if label is None:
            raise FormatError(f"annotation {ann.id} has label id {ann.label_id}, which is not a project label")
        if list(ann.rle["size"]) != [image.height, image.width]:
            raise FormatError(f"annotation {ann.id}: mask size {ann.rle['size']} does not match image "
                              f"{image.file_name} ({image.height}x{image.width})")
        meta = {"id": ann.id} if ann.score is None else {"id": ann.id, "score": ann.score}
        if ann.provenance:
            meta["source"] = ann.provenance
        if ann.reviewed_by:
            meta["reviewed_by"] = ann.reviewed_by
        kept = ann.extra.get("labelme", {})
        if kept.get("shapes") and kept.get("mask_sha") == mask_sha(ann.rle):
            for original in kept["shapes"]:  # unchanged object: its shapes exactly as they were read
                shapes.append({**original, "label": label.name, META_KEY: meta})
            continue
        template = dict(kept["shapes"][0]) if kept.get("shapes") else {}
        for key in ("points", "shape_type", "mask", META_KEY, "label"):
            template.pop(key, None)
        geometry, lost = shapes_of_mask(masks.decode(ann.rle), holes, detail)
        if lost:
            warnings.append(f"{image.file_name}: object {ann.id} ({label.name}) has holes; written as polygons "
                            "without them")
        group = template.get("group_id")
        if len(geometry) > 1 and group is None:
            group, next_group = next_group, next_group + 1
        description, flags = provenance_fields(ann, template)
        for part in geometry:
            shape = {"label": label.name, "points": part["points"], "group_id": group,
                     "description": description, "shape_type": part["shape_type"], "flags": flags}
            if "mask" in part:
                shape["mask"] = part["mask"]
            shape.update({k: v for k, v in template.items() if k not in shape})
            shape[META_KEY] = meta
            shapes.append(shape)
    shapes.extend(saved.get("other_shapes", []))
    doc: dict[str, Any] = {
        "version": saved.get("version", LABELME_VERSION),
        "flags": saved.get("flags", {}),
        "shapes": shapes,
        "imagePath": relative_posix(image_path(dataset, image), json_path.parent),
        "imageData": _image_data(image_path(dataset, image)) if image_data else None,
        "imageHeight": image.height,
        "imageWidth": image.width,
    }
    doc.update({k: v for k, v in saved.get("keys", {}).items() if k not in doc})
    doc[META_KEY] = {"image_id": image.id,
                     "labels": {lab.name: {"id": lab.id, "color": list(lab.color)} for lab in dataset.labels}}
    return doc


def _written_by_us(json_path: Path, file_name: str) -> bool:
    """Whether `json_path` is a LabelMe file an earlier export wrote for this image: it is then
    rewritten (without the objects deleted since) rather than left stale. Other files are never
    touched for an image without objects."""
    if not json_path.is_file():
        return False
    try:
        doc = json.loads(json_path.read_bytes())
    except (OSError, ValueError):
        return False
    return (isinstance(doc, dict) and isinstance(doc.get(META_KEY), dict)
            and isinstance(doc.get("imagePath"), str)
            and Path(doc["imagePath"].replace("\\", "/")).name == Path(file_name).name)


def export_labelme(dataset: Dataset, out_dir: str | Path, *, holes: str = "mask", image_data: bool = False,
                   detail: PolygonDetail = DEFAULT_DETAIL, progress: Progress = no_progress) -> ExportResult:
    """One labelme JSON per annotated image under `out_dir` (mirroring the images' sub-folders).
    Every document is built before the first file is written; each file is written atomically."""
    if holes not in ("mask", "polygons"):
        raise FormatError("holes must be 'mask' or 'polygons'")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FormatError(f"--out {out_dir} is a file; LabelMe export writes a folder of JSON files")
    warnings: list[str] = []
    by_image: dict[int, list[AnnotationRecord]] = {}
    for ann in dataset.annotations:
        by_image.setdefault(ann.image_id, []).append(ann)
    taken: set[str] = set()
    files: list[tuple[Path, bytes]] = []
    n_shapes = 0
    for image in progress(dataset.images, len(dataset.images), "LabelMe files"):
        anns = sorted(by_image.get(image.id, []), key=lambda a: (a.order, a.id))
        json_path = out_dir / _json_name(image.file_name, taken)  # names reserved for every image
        if not anns and not image.extra.get("labelme") and not _written_by_us(json_path, image.file_name):
            continue  # nothing to say about this image (an earlier file of ours is emptied instead)
        if image.width <= 0 or image.height <= 0:
            warnings.append(f"image {image.file_name} is unreadable and its size unknown; no LabelMe file written")
            continue
        doc = image_document(dataset, image, anns, json_path, holes=holes, image_data=image_data,
                             detail=detail, warnings=warnings)
        n_shapes += len(doc["shapes"])
        files.append((json_path, atomic.dumps_json(doc, indent=2)))
    written = atomic.write_files(files)
    return ExportResult(files=written, warnings=warnings, counts={"files": len(written), "shapes": n_shapes})


# --------------------------------------------------------------------------------------------------
# import: see labelme_read.py (kept separate to keep each module small)


def register(registry: Any) -> None:
    from seem_annotator.formats.labelme_read import LabelmeExporter, LabelmeImporter

    registry.add_exporter(LabelmeExporter())
    registry.add_importer(LabelmeImporter())
