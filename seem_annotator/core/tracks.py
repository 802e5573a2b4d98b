"""Tracks: one object across the frames of a sequence, with its label.

A track's mask on a frame is an ordinary annotation of that frame's image; a `track_frames` row
ties it to the track and says how it was made:

- keyframe: made or corrected by a person (never overwritten by propagation);
- propagated: written by propagation, with its provenance (from which keyframe, by which backend)
  and confidence; `flagged` when the confidence fell below the setting (for a person to check).
  A propagated row without an annotation means the object was lost on that frame.

Every change is one undoable action in the frame's own history (the same `history.Recorder` as
every other edit), so undo on a frame reverts what propagation or a correction did there. A
propagated mask that a person then edits by any means (brush, eraser...) counts as a keyframe:
the row keeps the digest of the mask propagation wrote, and a different mask is a person's.
Track rows themselves, like labels, are project-wide and not in any image's history.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from seem_annotator.core import annotations as ann_ops
from seem_annotator.core import masks
from seem_annotator.core.history import Recorder
from seem_annotator.core.store import Store, dumps, now
from seem_annotator.errors import UserError

KEYFRAME = "keyframe"
PROPAGATED = "propagated"


class TrackError(UserError):
    """A track operation is impossible (unknown track, a frame of another sequence...)."""


@dataclass
class TrackRecord:
    id: int
    sequence_id: int
    label_id: int
    name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrackFrame:
    """The track on one frame. `kind` is KEYFRAME or PROPAGATED (a propagated mask a person edited
    reads as KEYFRAME); `annotation_id` None = the object was lost there."""

    image_id: int
    frame_index: int
    kind: str
    annotation_id: int | None
    confidence: float | None = None
    flagged: bool = False
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def is_keyframe(self) -> bool:
        return self.kind == KEYFRAME


def rle_digest(rle: dict) -> str:
    clean = masks.normalize(rle)
    return hashlib.sha1(dumps(clean).encode()).hexdigest()


def _frame_state(r: Any) -> TrackFrame | None:
    if r["annotation_id"] is not None and r["ann_present"] is None:
        return None  # its annotation was deleted: the track is not on this frame
    kind = str(r["kind"])
    if kind == PROPAGATED and r["ann_rle"] is not None and r["rle_digest"] != rle_digest(json.loads(r["ann_rle"])):
        kind = KEYFRAME  # a person edited the propagated mask
    return TrackFrame(int(r["image_id"]), int(r["frame_index"]), kind,
                      None if r["annotation_id"] is None else int(r["annotation_id"]),
                      None if r["confidence"] is None else float(r["confidence"]), bool(r["flagged"]),
                      json.loads(r["provenance"]))


def _track(row: Any) -> TrackRecord:
    return TrackRecord(int(row["id"]), int(row["sequence_id"]), int(row["label_id"]), row["name"],
                       json.loads(row["extra"]))


class Tracks:
    """The tracks of one project store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- tracks ----------------------------------------------------------------------------------

    def create(self, sequence_id: int, label_id: int, name: str | None = None) -> TrackRecord:
        with self.store.transaction():
            if self.store.one("SELECT 1 FROM sequences WHERE id = ?", (int(sequence_id),)) is None:
                raise TrackError(f"Sequence {sequence_id} does not exist.")
            label = self.store.one("SELECT deleted FROM labels WHERE id = ?", (int(label_id),))
            if label is None or label["deleted"]:
                raise TrackError(f"Label {label_id} does not exist.")
            cur = self.store.execute("INSERT INTO tracks (sequence_id, label_id, name, extra, created_at) "
                                     "VALUES (?, ?, ?, '{}', ?)", (int(sequence_id), int(label_id), name, now()))
            return self.get(int(cur.lastrowid))

    def get(self, track_id: int) -> TrackRecord:
        row = self.store.one("SELECT * FROM tracks WHERE id = ?", (int(track_id),))
        if row is None:
            raise TrackError(f"Track {track_id} does not exist in this project.")
        return _track(row)

    def of_sequence(self, sequence_id: int) -> list[TrackRecord]:
        return [_track(r) for r in self.store.query("SELECT * FROM tracks WHERE sequence_id = ? ORDER BY id",
                                                    (int(sequence_id),))]

    def start_from_annotation(self, ann_id: int, name: str | None = None) -> TrackRecord:
        """A new track whose first keyframe is an existing annotation on a frame (made with any
        prompt: click, box, polygon, scribble, text, exemplar); the track takes its label."""
        with self.store.transaction():
            ann = ann_ops.get(self.store, ann_id)
            track = self.create(self._sequence_of(ann.image_id), ann.label_id, name)
            self.attach(track.id, ann.id)
            return track

    # -- frames ----------------------------------------------------------------------------------

    _FRAMES = ("SELECT t.*, f.frame_index, a.rle AS ann_rle, a.id AS ann_present FROM track_frames t "
               "JOIN sequence_frames f ON f.image_id = t.image_id "
               "LEFT JOIN annotations a ON a.id = t.annotation_id WHERE t.track_id = ?")

    def frames(self, track_id: int) -> dict[int, TrackFrame]:
        """image id -> the track on that frame (frames where its annotation was deleted are left out)."""
        rows = self.store.query(self._FRAMES + " ORDER BY f.frame_index, t.id", (int(track_id),))
        out: dict[int, TrackFrame] = {}
        for r in rows:
            state = _frame_state(r)
            if state is not None:
                out[state.image_id] = state
        return out

    def frame(self, track_id: int, image_id: int) -> TrackFrame | None:
        """The track on one frame, or None (one query: what each propagation step checks)."""
        rows = self.store.query(self._FRAMES + " AND t.image_id = ? ORDER BY t.id", (int(track_id), int(image_id)))
        states = [s for s in map(_frame_state, rows) if s is not None]
        return states[-1] if states else None

    def track_of_annotation(self, ann_id: int) -> int | None:
        row = self.store.one("SELECT track_id FROM track_frames WHERE annotation_id = ? ORDER BY id DESC LIMIT 1",
                             (int(ann_id),))
        return None if row is None else int(row["track_id"])

    def attach(self, track_id: int, ann_id: int) -> TrackFrame:
        """Make an existing annotation the track's keyframe on its frame (replacing what the track
        had there); one undoable action on that frame."""
        with self.store.transaction():
            track = self.get(track_id)
            ann = ann_ops.get(self.store, ann_id)
            self._check_frame(track, ann.image_id)
            rec = Recorder(self.store, ann.image_id)
            self._drop_existing(rec, track.id, ann.image_id, keep_annotation=ann.id)
            if ann.label_id != track.label_id:
                rec.update("annotations", ann.id, label_id=track.label_id, updated_at=now())
            self._insert_member(rec, track.id, ann.image_id, ann.id, KEYFRAME, {"by": "person"}, None, False, None)
            rec.commit("track_keyframe")
        return self.frame(track.id, ann.image_id)

    def set_keyframe(self, track_id: int, image_id: int, rle: dict, source: dict | None = None) -> TrackFrame:
        """The track's mask on this frame, made or corrected by a person: a keyframe (a propagated
        mask there is replaced); one undoable action."""
        with self.store.transaction():
            track = self.get(track_id)
            self._check_frame(track, image_id)
            clean = ann_ops.check_rle(self.store, image_id, rle)
            if masks.area(clean) == 0:
                raise TrackError("The keyframe mask is empty; draw the object first.")
            rec = Recorder(self.store, image_id)
            self._drop_existing(rec, track.id, image_id)
            ann_id = ann_ops.insert(rec, image_id, track.label_id, clean,
                                    source={**(source or {}), "track_id": track.id, "keyframe": True})
            self._insert_member(rec, track.id, image_id, ann_id, KEYFRAME, {"by": "person"}, None, False, None)
            rec.commit("track_keyframe")
        return self.frame(track.id, image_id)

    def write_propagated(self, track_id: int, image_id: int, rle: dict | None, provenance: dict,
                         confidence: float, flagged: bool) -> bool:
        """Store a propagated mask (None = object lost) unless the frame is a keyframe of the track,
        which is never overwritten; returns whether it was written. One undoable action."""
        with self.store.transaction():
            track = self.get(track_id)
            current = self.frame(track.id, image_id)
            if current is not None and current.is_keyframe:
                return False
            clean = None if rle is None else ann_ops.check_rle(self.store, image_id, rle)
            if clean is not None and masks.area(clean) == 0:
                clean = None
            rec = Recorder(self.store, image_id)
            ann_id = None
            if current is not None and current.annotation_id is not None and clean is not None:
                # Same annotation id across re-propagation: what a person selected stays selected.
                ann_id = current.annotation_id
                rec.update("annotations", ann_id, rle=dumps(clean), score=float(confidence), updated_at=now())
                self._drop_existing(rec, track.id, image_id, keep_annotation=ann_id)
            else:
                self._drop_existing(rec, track.id, image_id)
                if clean is not None:
                    ann_id = ann_ops.insert(rec, image_id, track.label_id, clean, score=float(confidence),
                                            source={"track_id": track.id, "propagated": provenance})
            self._insert_member(rec, track.id, image_id, ann_id, PROPAGATED, provenance, float(confidence),
                                bool(flagged), None if clean is None else rle_digest(clean))
            rec.commit("propagate")
            return True

    # -- internals -------------------------------------------------------------------------------

    def _sequence_of(self, image_id: int) -> int:
        row = self.store.one("SELECT sequence_id FROM sequence_frames WHERE image_id = ?", (int(image_id),))
        if row is None:
            raise TrackError(f"Image {image_id} is not a frame of a sequence; tracks live on sequences.")
        return int(row["sequence_id"])

    def _check_frame(self, track: TrackRecord, image_id: int) -> None:
        if self._sequence_of(image_id) != track.sequence_id:
            raise TrackError(f"Image {image_id} is not a frame of track {track.id}'s sequence.")

    def _drop_existing(self, rec: Recorder, track_id: int, image_id: int, keep_annotation: int | None = None) -> None:
        """Remove the track's rows (and their annotations) on this frame, keeping one annotation."""
        for row in self.store.query("SELECT id, annotation_id FROM track_frames WHERE track_id = ? AND image_id = ?",
                                    (track_id, int(image_id))):
            ann = row["annotation_id"]
            if ann is not None and ann != keep_annotation:
                rec.delete("annotations", int(ann))
            rec.delete("track_frames", int(row["id"]))

    def _insert_member(self, rec: Recorder, track_id: int, image_id: int, ann_id: int | None, kind: str,
                       provenance: dict, confidence: float | None, flagged: bool, digest: str | None) -> int:
        return rec.insert("track_frames", {
            "track_id": track_id, "image_id": int(image_id), "annotation_id": ann_id, "kind": kind,
            "provenance": dumps(provenance), "confidence": confidence, "flagged": int(flagged),
            "rle_digest": digest, "created_at": now()})
