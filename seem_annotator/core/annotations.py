"""Edit operations on accepted annotations, each one undoable action.

Every function here runs inside one store transaction and records its row changes through a
`history.Recorder`, so `Project.undo(image_id)` reverts it. Masks are COCO RLEs at the image's
oriented full resolution; mask arithmetic goes through `core.masks` (pycocotools) and connected
components through OpenCV (8-connectivity, like the polygon geometry).

z-order: `AnnotationRecord.order` is the `z` column; higher draws on top. New annotations go on
top; `reorder` renumbers the image's annotations 0..n-1 in the new order.
"""

from __future__ import annotations

import json
from typing import Any

import cv2
import numpy as np

from seem_annotator.core import masks
from seem_annotator.core.history import Recorder
from seem_annotator.core.records import AnnotationRecord
from seem_annotator.core.store import Store, dumps, now
from seem_annotator.errors import UserError


class AnnotationError(UserError):
    """An annotation edit is impossible (unknown id, masks of different images, empty result...)."""


def record_from_row(row: Any) -> AnnotationRecord:
    keys = row.keys()  # a read-only store older than the provenance columns lacks them
    return AnnotationRecord(
        id=int(row["id"]), image_id=int(row["image_id"]), label_id=int(row["label_id"]),
        rle=json.loads(row["rle"]), score=None if row["score"] is None else float(row["score"]),
        iscrowd=int(row["iscrowd"]), order=int(row["z"]), source=json.loads(row["source"]),
        extra=json.loads(row["extra"]), created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        provenance=row["provenance"] if "provenance" in keys else None,
        reviewed_by=row["reviewed_by"] if "reviewed_by" in keys else None,
        reviewed_at=row["reviewed_at"] if "reviewed_at" in keys and row["reviewed_at"] is not None else None)


def get(store: Store, ann_id: int) -> AnnotationRecord:
    row = store.one("SELECT * FROM annotations WHERE id = ?", (int(ann_id),))
    if row is None:
        raise AnnotationError(f"Annotation {ann_id} does not exist (it may have been deleted or undone).")
    return record_from_row(row)


def list_for(store: Store, image_id: int | None = None) -> list[AnnotationRecord]:
    if image_id is None:
        rows = store.query("SELECT * FROM annotations ORDER BY image_id, z, id")
    else:
        rows = store.query("SELECT * FROM annotations WHERE image_id = ? ORDER BY z, id", (int(image_id),))
    return [record_from_row(r) for r in rows]


def check_rle(store: Store, image_id: int, rle: dict) -> dict:
    """The RLE normalised (compressed, str counts) after checking it has the image's size."""
    try:
        clean = masks.normalize(rle)
    except (KeyError, TypeError, ValueError) as exc:
        raise AnnotationError(f"Not a valid mask RLE ({exc}).") from exc
    row = store.one("SELECT width, height, readable FROM images WHERE id = ?", (image_id,))
    if row is None:
        raise AnnotationError(f"Image {image_id} does not exist.")
    if row["readable"] and (row["width"], row["height"]) != (0, 0):
        if clean["size"] != [row["height"], row["width"]]:
            raise AnnotationError(f"The mask is {clean['size'][1]}x{clean['size'][0]} but image {image_id} is "
                                  f"{row['width']}x{row['height']}.")
    return clean


def next_z(store: Store, image_id: int) -> int:
    row = store.one("SELECT MAX(z) AS z FROM annotations WHERE image_id = ?", (image_id,))
    return 0 if row["z"] is None else int(row["z"]) + 1


def insert(rec: Recorder, image_id: int, label_id: int, rle: dict, *, score: float | None = None,
           iscrowd: int = 0, z: int | None = None, source: dict | None = None,
           extra: dict | None = None, created_at: float | None = None, provenance: str | None = "interactive",
           reviewed_by: str | None = None, reviewed_at: float | None = None) -> int:
    """Add an annotation row through the recorder; returns its id. `provenance`: who made it
    ("interactive", "imported:coco", "run:3/everything")."""
    t = now()
    return rec.insert("annotations", {
        "image_id": int(image_id), "label_id": int(label_id), "rle": dumps(rle),
        "score": None if score is None else float(score),  # numpy scalars do not bind
        "iscrowd": int(iscrowd), "z": next_z(rec.store, image_id) if z is None else z,
        "source": dumps(source or {}), "extra": dumps(extra or {}),
        "created_at": t if created_at is None else created_at, "updated_at": t,
        "provenance": provenance, "reviewed_by": reviewed_by,
        "reviewed_at": None if reviewed_at is None else float(reviewed_at)})


def _check_label(store: Store, label_id: int) -> None:
    row = store.one("SELECT deleted FROM labels WHERE id = ?", (int(label_id),))
    if row is None or row["deleted"]:
        raise AnnotationError(f"Label {label_id} does not exist.")


def relabel(store: Store, ann_id: int, label_id: int) -> AnnotationRecord:
    with store.transaction():
        ann = get(store, ann_id)
        _check_label(store, label_id)
        if ann.label_id == int(label_id):
            return ann  # no change, no undo step
        rec = Recorder(store, ann.image_id)
        rec.update("annotations", ann.id, label_id=int(label_id), updated_at=now())
        rec.commit("relabel")
        return get(store, ann.id)


def set_mask(store: Store, ann_id: int, rle: dict) -> AnnotationRecord:
    """Replace the mask (a brush or eraser edit). An empty mask is refused: delete instead."""
    with store.transaction():
        ann = get(store, ann_id)
        clean = check_rle(store, ann.image_id, rle)
        if masks.area(clean) == 0:
            raise AnnotationError("The edited mask is empty; delete the annotation instead.")
        if clean == masks.normalize(ann.rle):
            return ann
        rec = Recorder(store, ann.image_id)
        rec.update("annotations", ann.id, rle=dumps(clean), updated_at=now())
        rec.commit("edit_mask")
        return get(store, ann.id)


def merge(store: Store, ann_ids: list[int]) -> AnnotationRecord:
    """Union of the masks as one new annotation (label and z of the top-most one); the inputs go."""
    ids = list(dict.fromkeys(int(i) for i in ann_ids))
    if len(ids) < 2:
        raise AnnotationError("Select at least two annotations to merge.")
    with store.transaction():
        anns = [get(store, i) for i in ids]
        if len({a.image_id for a in anns}) != 1:
            raise AnnotationError("Only annotations of the same image can be merged.")
        top = max(anns, key=lambda a: (a.order, a.id))
        rec = Recorder(store, top.image_id)
        for a in anns:
            rec.delete("annotations", a.id)
        scores = [a.score for a in anns if a.score is not None]
        new_id = insert(rec, top.image_id, top.label_id, masks.union([a.rle for a in anns]),
                        score=min(scores) if scores else None, z=top.order,
                        source={"merged_from": ids}, extra=dict(top.extra))
        rec.commit("merge")
        return get(store, new_id)


def subtract(store: Store, ann_id: int, other_id: int) -> AnnotationRecord:
    """Remove `other`'s pixels from `ann` (cutting a hole when other lies inside it)."""
    with store.transaction():
        ann, other = get(store, ann_id), get(store, other_id)
        if ann.id == other.id:
            raise AnnotationError("An annotation cannot be subtracted from itself.")
        if ann.image_id != other.image_id:
            raise AnnotationError("Only annotations of the same image can be subtracted.")
        result = masks.subtract(ann.rle, other.rle)
        if masks.area(result) == 0:
            raise AnnotationError("Subtracting would leave nothing of the annotation; delete it instead.")
        rec = Recorder(store, ann.image_id)
        rec.update("annotations", ann.id, rle=dumps(result), updated_at=now())
        rec.commit("subtract")
        return get(store, ann.id)


def components(rle: dict) -> list[dict]:
    """RLEs of the 8-connected parts of a mask, largest first."""
    mask = masks.decode(rle).astype(np.uint8)
    count, labels = cv2.connectedComponents(mask, connectivity=8)
    parts = [labels == i for i in range(1, count)]
    parts.sort(key=lambda m: -int(m.sum()))
    return [masks.encode(p) for p in parts]


def split(store: Store, ann_id: int) -> list[AnnotationRecord]:
    """Each disconnected part becomes its own annotation (same label, score, z); returns them,
    largest first. A single-part mask is refused."""
    with store.transaction():
        ann = get(store, ann_id)
        parts = components(ann.rle)
        if len(parts) < 2:
            raise AnnotationError("The annotation has only one connected part; there is nothing to split.")
        rec = Recorder(store, ann.image_id)
        rec.update("annotations", ann.id, rle=dumps(parts[0]), updated_at=now())
        new_ids = [insert(rec, ann.image_id, ann.label_id, part, score=ann.score, iscrowd=ann.iscrowd,
                          z=ann.order, source={**ann.source, "split_from": ann.id}, extra=dict(ann.extra),
                          provenance=ann.provenance, reviewed_by=ann.reviewed_by, reviewed_at=ann.reviewed_at)
                   for part in parts[1:]]
        rec.commit("split")
        return [get(store, i) for i in [ann.id, *new_ids]]


def delete(store: Store, ann_id: int) -> None:
    with store.transaction():
        ann = get(store, ann_id)
        rec = Recorder(store, ann.image_id)
        rec.delete("annotations", ann.id)
        rec.commit("delete")


def reorder(store: Store, ann_id: int, new_order: int) -> list[AnnotationRecord]:
    """Move the annotation to position `new_order` (0 = bottom) of its image's stack; the stack is
    renumbered 0..n-1. Returns the image's annotations bottom to top."""
    with store.transaction():
        ann = get(store, ann_id)
        stack = [a for a in list_for(store, ann.image_id) if a.id != ann.id]
        pos = max(0, min(int(new_order), len(stack)))
        stack.insert(pos, ann)
        rec = Recorder(store, ann.image_id)
        for z, a in enumerate(stack):
            if a.order != z:
                rec.update("annotations", a.id, z=z)
        if not rec.changes:
            return stack
        rec.commit("reorder")
        return list_for(store, ann.image_id)


def position(store: Store, ann_id: int) -> tuple[int, int]:
    """(index in its image's stack bottom-up, stack size)."""
    ann = get(store, ann_id)
    stack = [a.id for a in list_for(store, ann.image_id)]
    return stack.index(ann.id), len(stack)
