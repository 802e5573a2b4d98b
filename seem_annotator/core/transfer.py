"""Adding a whole `Dataset` (from an importer) to a project in one transaction.

Everything is validated and written inside a single transaction: any error rolls it all back, so a
failed import leaves the project exactly as it was. Imports are not undo-history entries (they are
bulk operations, like a scan); they do not disturb the history either, because ids are never reused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath

from seem_annotator.core import annotations as ann_ops
from seem_annotator.core import images as imgio
from seem_annotator.core import labels as label_ops
from seem_annotator.core import masks, palette
from seem_annotator.core.catalog import Catalog
from seem_annotator.core.history import Recorder
from seem_annotator.core.records import Dataset
from seem_annotator.core.store import Store
from seem_annotator.errors import FormatError


class _NoHistory(Recorder):
    """A recorder whose changes are not kept (imports are not undo entries)."""

    def insert(self, table: str, values: dict) -> int:
        row_id = super().insert(table, values)
        self.changes.clear()
        return row_id


def _clean_name(file_name: str) -> str:
    name = PurePosixPath(str(file_name).replace("\\", "/")).as_posix()
    parts = PurePosixPath(name).parts
    if not name or name.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
        raise FormatError(f"The image path {file_name!r} is not inside the images folder.")
    return name[2:] if name.startswith("./") else name


def import_dataset(store: Store, catalog: Catalog, dataset: Dataset,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    summary = dict(images_added=0, images_matched=0, labels_added=0, labels_matched=0, annotations_added=0)
    root = Path(catalog.root)
    with store.transaction():
        image_map: dict[int, int] = {}
        sizes: dict[int, tuple[int, int]] = {}
        for img in dataset.images:
            name = _clean_name(img.file_name)
            if img.id in image_map:
                raise FormatError(f"The dataset lists image id {img.id} twice.")
            existing = catalog.image_by_name(name)
            if existing is not None:
                image_map[img.id] = existing.id
                sizes[existing.id] = (existing.width, existing.height)
                catalog.merge_extra(existing.id, img.extra)
                summary["images_matched"] += 1
                continue
            path = root / name
            width, height, sha, readable, error = int(img.width), int(img.height), img.sha256, True, None
            if path.is_file():
                scan = imgio.probe(root, name)
                readable, error = scan.readable, scan.error
                sha = scan.sha256 or sha
                if scan.readable:
                    if (width, height) not in ((0, 0), (scan.width, scan.height)):
                        raise FormatError(f"{name} is {scan.width}x{scan.height} after EXIF orientation but the "
                                          f"annotations say {width}x{height}.")
                    width, height = scan.width, scan.height
            else:
                readable, error = False, f"{name} is missing from {root}."
            new_id = catalog.insert(name, width, height, sha, readable, error, dict(img.extra))
            image_map[img.id] = new_id
            sizes[new_id] = (width, height)
            summary["images_added"] += 1

        label_map: dict[int, int] = {}
        for label in dataset.labels:
            found = label_ops.find_by_name(store, label.name)
            if found is not None:
                label_map[label.id] = found.id
                label_ops.merge_extra(store, found.id, label.extra)
                summary["labels_matched"] += 1
                continue
            shortcut = label.shortcut
            present = label_ops.list_labels(store)
            if shortcut is not None and any(x.shortcut == shortcut for x in present):
                shortcut = None  # keep the project's existing key bindings
            color = label.color
            if color is not None and any(tuple(x.color) == tuple(color) for x in present):
                # Another label already looks like this: a colour of its own, unlike the labels
                # still to come too.
                color = palette.pick_color([tuple(x.color) for x in present] +
                                           [tuple(x.color) for x in dataset.labels if x.color is not None])
            made = label_ops.add_label(store, label.name, color, shortcut, dict(label.extra), label_id=label.id)
            label_map[label.id] = made.id
            summary["labels_added"] += 1

        rec = _NoHistory(store, 0)
        total = len(dataset.annotations)
        ordered = sorted(enumerate(dataset.annotations), key=lambda p: (p[1].image_id, p[1].order, p[0]))
        for done, (_, ann) in enumerate(ordered, 1):
            if ann.image_id not in image_map:
                raise FormatError(f"Annotation {ann.id} refers to unknown image id {ann.image_id}.")
            if ann.label_id not in label_map:
                raise FormatError(f"Annotation {ann.id} refers to unknown label id {ann.label_id}.")
            image_id = image_map[ann.image_id]
            try:
                rle = masks.normalize(ann.rle)
            except (KeyError, TypeError, ValueError) as exc:
                raise FormatError(f"Annotation {ann.id} has an invalid mask ({exc}).") from exc
            width, height = sizes[image_id]
            if (width, height) != (0, 0) and rle["size"] != [height, width]:
                raise FormatError(f"Annotation {ann.id} has a {rle['size'][1]}x{rle['size'][0]} mask on a "
                                  f"{width}x{height} image.")
            ann_ops.insert(rec, image_id, label_map[ann.label_id], rle, score=ann.score, iscrowd=ann.iscrowd,
                           source=dict(ann.source), extra=dict(ann.extra),
                           created_at=ann.created_at or None,
                           provenance=ann.provenance or _imported_provenance(ann.source),
                           reviewed_by=ann.reviewed_by, reviewed_at=ann.reviewed_at)
            summary["annotations_added"] += 1
            if progress:
                progress(done, total)
    return summary


def _imported_provenance(source: dict) -> str | None:
    kind = source.get("imported") if isinstance(source, dict) else None
    return f"imported:{kind}" if kind else None
