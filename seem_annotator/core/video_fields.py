"""Sequence and track fields for exporters, in the layout video dataset readers use.

`with_video_fields(store, dataset)` adds to a snapshot, only where the project has sequences:
- COCO (YouTube-VIS/TAO layout; plain COCO readers ignore the extra keys): a top-level `videos`
  list (id, name, frame count, fps), `images[].video_id` / `frame_index`, `annotations[].track_id`;
- LabelMe: the track id as the shape's `group_id` (one object across frames).
The exporters already copy these `extra` fields, so they need no video code of their own.
"""

from __future__ import annotations

import dataclasses

from seem_annotator.core.records import Dataset
from seem_annotator.core.store import Store


def with_video_fields(store: Store, dataset: Dataset) -> Dataset:
    if store.one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sequences'") is None:
        return dataset  # a project opened read-only before its upgrade has no sequences
    seqs = store.query("SELECT s.id, s.name, s.fps, (SELECT COUNT(*) FROM sequence_frames f "
                       "WHERE f.sequence_id = s.id) AS n FROM sequences s ORDER BY s.id")
    if not seqs:
        return dataset
    frames = {int(r["image_id"]): (int(r["sequence_id"]), int(r["frame_index"]))
              for r in store.query("SELECT image_id, sequence_id, frame_index FROM sequence_frames")}
    # The annotation a track row points at; a row whose annotation was deleted points at nothing.
    track_of = {int(r["annotation_id"]): int(r["track_id"]) for r in store.query(
        "SELECT annotation_id, track_id FROM track_frames WHERE annotation_id IS NOT NULL ORDER BY id")}
    images = []
    for image in dataset.images:
        where = frames.get(image.id)
        if where is not None:
            coco = {**image.extra.get("coco", {}), "video_id": where[0], "frame_index": where[1]}
            image = dataclasses.replace(image, extra={**image.extra, "coco": coco})
        images.append(image)
    annotations = []
    for ann in dataset.annotations:
        track = track_of.get(ann.id)
        if track is not None:
            extra = dict(ann.extra)
            extra["coco"] = {**extra.get("coco", {}), "track_id": track}
            labelme = dict(extra.get("labelme", {}))
            shapes = [dict(s) for s in labelme.get("shapes", [])] or [{}]
            for shape in shapes:
                shape["group_id"] = track
            labelme["shapes"] = shapes
            labelme.pop("mask_sha", None)  # re-derive the shapes, with the track as their group
            extra["labelme"] = labelme
            ann = dataclasses.replace(ann, extra=extra)
        annotations.append(ann)
    videos = [{"id": int(r["id"]), "name": str(r["name"]), "frame_count": int(r["n"]),
               **({"fps": float(r["fps"])} if r["fps"] is not None else {})} for r in seqs]
    extra = dict(dataset.extra)
    extra["coco"] = {**extra.get("coco", {}), "videos": videos}
    return dataclasses.replace(dataset, images=images, annotations=annotations, extra=extra)
