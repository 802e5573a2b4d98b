"""Adding a whole `Dataset` (from an importer) to a project in one transaction.

Everything is validated and written inside a single transaction: any error rolls it all back, so a
failed import leaves the project exactly as it was. Imports are not per-image undo-history entries
(those hold full row images: an import's would copy every mask it added); they do not disturb the
history either, because ids are never reused. Instead the newest import is recorded (`ImportRecord`,
in the store's meta table) and `undo_last_import` takes back what it added: one transaction's
annotations have consecutive ids, so the record is a range, whatever the import's size.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from seem_annotator.core import annotations as ann_ops
from seem_annotator.core import images as imgio
from seem_annotator.core import labels as label_ops
from seem_annotator.core import masks, palette
from seem_annotator.core.catalog import Catalog
from seem_annotator.core.history import Recorder
from seem_annotator.core.records import Dataset
from seem_annotator.core.store import Store, dumps, now
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


LAST_IMPORT = "last_import"  # meta key of the newest import's ImportRecord


@dataclass(frozen=True)
class ImportRecord:
    """What the newest import added: its annotations (ids first..last, consecutive: one
    transaction of the store's one writer), the labels and images it created, when and from what."""

    source: str
    at: float
    first_annotation: int
    last_annotation: int
    labels: tuple[int, ...]
    images: tuple[int, ...]
    history_before: int = 0  # the newest undo-history entry then: only later ones can name these ids

    @property
    def annotations(self) -> int:
        return max(0, self.last_annotation - self.first_annotation + 1)


def import_dataset(store: Store, catalog: Catalog, dataset: Dataset,
                   progress: Callable[[int, int], None] | None = None, source: str = "") -> dict[str, int]:
    """Add `dataset` (all or nothing) and record it as the import `undo_last_import` takes back;
    `source`: what it was read from, for the user (a file name)."""
    summary = dict(images_added=0, images_matched=0, labels_added=0, labels_matched=0, annotations_added=0)
    root = Path(catalog.root)
    added_images: list[int] = []
    added_labels: list[int] = []
    added_annotations: list[int] = []
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
            added_images.append(new_id)
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
            added_labels.append(made.id)
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
            added_annotations.append(ann_ops.insert(
                rec, image_id, label_map[ann.label_id], rle, score=ann.score, iscrowd=ann.iscrowd,
                source=dict(ann.source), extra=dict(ann.extra), created_at=ann.created_at or None,
                provenance=ann.provenance or _imported_provenance(ann.source),
                reviewed_by=ann.reviewed_by, reviewed_at=ann.reviewed_at))
            summary["annotations_added"] += 1
            if progress:
                progress(done, total)
        if added_annotations or added_labels or added_images:
            first, last = (min(added_annotations), max(added_annotations)) if added_annotations else (0, -1)
            history_before = store.one("SELECT COALESCE(MAX(id), 0) AS id FROM history")["id"]
            record = ImportRecord(source, now(), first, last, tuple(added_labels), tuple(added_images),
                                  int(history_before))
            store.set_meta(LAST_IMPORT, dumps(asdict(record)))  # joins this transaction
        else:  # nothing to take back: an older import's record would now mislead
            store.execute("DELETE FROM meta WHERE key = ?", (LAST_IMPORT,))
    return summary


def last_import(store: Store) -> ImportRecord | None:
    """The newest import, while it can still be taken back."""
    text = store.get_meta(LAST_IMPORT)
    if not text:
        return None
    try:
        raw = json.loads(text)
        return ImportRecord(str(raw["source"]), float(raw["at"]), int(raw["first_annotation"]),
                            int(raw["last_annotation"]), tuple(int(i) for i in raw["labels"]),
                            tuple(int(i) for i in raw["images"]), int(raw.get("history_before", 0)))
    except (ValueError, KeyError, TypeError):
        return None  # written by a newer version in another shape: not ours to interpret


def edited_since_import(store: Store, record: ImportRecord) -> tuple[int, int]:
    """(annotations of the import still in the project, those of them changed since)."""
    row = store.one("SELECT COUNT(*) AS n, COALESCE(SUM(updated_at > ?), 0) AS edited FROM annotations "
                    "WHERE id BETWEEN ? AND ?", (record.at, record.first_annotation, record.last_annotation))
    return int(row["n"]), int(row["edited"])


def undo_last_import(store: Store) -> dict[str, int] | None:
    """Take back the newest import in one transaction: its annotations still in the project (with
    any edits made to them since), the labels it created that nothing uses now, and the images it
    created for files it could not read (missing from the folder) that hold no other work. The
    undo-history entries that touched those annotations go too (undoing them would bring the
    annotations back). None when there is no import to take back."""
    with store.transaction():
        record = last_import(store)
        if record is None:
            return None
        present, edited = edited_since_import(store, record)
        store.execute("DELETE FROM annotations WHERE id BETWEEN ? AND ?",
                      (record.first_annotation, record.last_annotation))
        entries = _drop_history_of(store, record)
        # A track whose keyframe was an imported annotation loses that frame, not its other ones.
        store.execute("DELETE FROM track_frames WHERE annotation_id BETWEEN ? AND ?",
                      (record.first_annotation, record.last_annotation))
        labels = 0
        for label_id in record.labels:
            if store.one("SELECT 1 FROM annotations WHERE label_id = ? LIMIT 1", (label_id,)) is None:
                labels += store.execute("UPDATE labels SET deleted = 1, shortcut = NULL WHERE id = ? AND deleted = 0",
                                        (label_id,)).rowcount
        images = sum(_drop_placeholder_image(store, image_id) for image_id in record.images)
        store.execute("DELETE FROM meta WHERE key = ?", (LAST_IMPORT,))
    return dict(annotations_removed=present, edited=edited, labels_removed=labels, images_removed=images,
                history_entries_removed=entries)


def describe_undone_import(source: str, summary: dict[str, int]) -> str:
    """One line for the user: what undoing the import of `source` removed."""
    removed = summary.get("annotations_removed", 0)
    edited = summary.get("edited", 0)
    text = f"Undid the import of {source or 'annotations'}: removed {removed} annotation{'' if removed == 1 else 's'}"
    if edited:
        text += f" ({edited} edited since)"
    extras = [f"{n} {noun}{'' if n == 1 else 's'}" for n, noun in
              ((summary.get("labels_removed", 0), "label"), (summary.get("images_removed", 0), "unreadable image"))
              if n]
    return text + (f", {' and '.join(extras)}" if extras else "") + "."


def _drop_history_of(store: Store, record: ImportRecord) -> int:
    """Delete the undo-history entries that changed one of the import's annotations. Only entries
    made after it are read: each holds whole row images, and a project's history can be large."""
    return store.execute(
        "DELETE FROM history WHERE id IN (SELECT DISTINCT history.id FROM history, json_each(history.changes) "
        "WHERE history.id > ? AND json_extract(value, '$.table') = 'annotations' "
        "AND json_extract(value, '$.id') BETWEEN ? AND ?)",
        (record.history_before, record.first_annotation, record.last_annotation)).rowcount


# An image row is work in the project when any of these refer to it.
_IMAGE_USES = ("annotations", "sessions", "history", "proposals", "run_images", "sequence_frames", "track_frames")


def _drop_placeholder_image(store: Store, image_id: int) -> int:
    """Remove an image row the import created for a file it could not read (missing from the
    folder, as a rule), unless anything refers to it (1 when removed). A readable one stays: it is
    in the folder, and a rescan would add it again anyway."""
    row = store.one("SELECT readable FROM images WHERE id = ?", (image_id,))
    if row is None or row["readable"]:
        return 0
    for table in _IMAGE_USES:  # a writable store is at the current schema: all of them exist
        if store.one(f"SELECT 1 FROM {table} WHERE image_id = ? LIMIT 1", (image_id,)) is not None:
            return 0
    return store.execute("DELETE FROM images WHERE id = ?", (image_id,)).rowcount


def _imported_provenance(source: dict) -> str | None:
    kind = source.get("imported") if isinstance(source, dict) else None
    return f"imported:{kind}" if kind else None
