"""Sequences: ordered frames (a decoded video or a folder of frames) inside a project.

A frame is an ordinary image of the project (same table, same annotations, same undo history); a
sequence only records which images are its frames, in which order, and when each was shown. So
a project mixes sequences and plain images, and everything that works on images works on frames.

A sequence whose video stopped decoding part-way is kept with the frames that were decoded and
marked `truncated` with the reason in `error`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seem_annotator.core.store import Store, dumps, now
from seem_annotator.errors import UserError


class SequenceError(UserError):
    """A sequence cannot be found or recorded (unknown name, duplicate name, frames not in the project)."""


@dataclass
class FrameRecord:
    """One frame: its position in the sequence, the image that holds it, and its time in seconds."""

    index: int
    image_id: int
    file_name: str
    timestamp: float | None = None


@dataclass
class SequenceRecord:
    """A sequence of frames. `folder` is relative to the images root."""

    id: int
    name: str
    folder: str
    frame_count: int
    source: str | None = None
    fps: float | None = None
    truncated: bool = False
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers by value: frame2 < frame10."""
    parts = re.split(r"(\d+)", Path(name).name.lower())
    return tuple((0, int(p), p) if p.isdigit() else (1, 0, p) for p in parts if p != ""), name


_SELECT = ("SELECT s.*, (SELECT COUNT(*) FROM sequence_frames f WHERE f.sequence_id = s.id) AS frame_count "
           "FROM sequences s")


def _record(row: Any) -> SequenceRecord:
    return SequenceRecord(id=int(row["id"]), name=str(row["name"]), folder=str(row["folder"]),
                          frame_count=int(row["frame_count"]), source=row["source"],
                          fps=None if row["fps"] is None else float(row["fps"]), truncated=bool(row["truncated"]),
                          error=row["error"], extra=json.loads(row["extra"]))


class Sequences:
    """The sequences of one project store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def all(self) -> list[SequenceRecord]:
        return [_record(r) for r in self.store.query(_SELECT + " ORDER BY s.name")]

    def get(self, sequence_id: int) -> SequenceRecord:
        row = self.store.one(_SELECT + " WHERE s.id = ?", (int(sequence_id),))
        if row is None:
            raise SequenceError(f"Sequence {sequence_id} does not exist in this project.")
        return _record(row)

    def by_name(self, name: str) -> SequenceRecord:
        row = self.store.one(_SELECT + " WHERE s.name = ?", (name,))
        if row is None:
            known = ", ".join(s.name for s in self.all()) or "none"
            raise SequenceError(f"No sequence named {name!r} in this project (sequences: {known}).")
        return _record(row)

    def add(self, name: str, folder: str, frames: Sequence[tuple[str, float | None]], *,
            source: str | None = None, fps: float | None = None, truncated: bool = False,
            error: str | None = None, extra: dict | None = None) -> SequenceRecord:
        """Record a sequence over images already in the project: `frames` are (file_name relative
        to the images root, timestamp) in frame order."""
        if not frames:
            raise SequenceError(f"Sequence {name!r} has no frames.")
        with self.store.transaction():
            if self.store.one("SELECT 1 FROM sequences WHERE name = ?", (name,)) is not None:
                raise SequenceError(f"A sequence named {name!r} already exists; pick another name.")
            ids = []
            for file_name, _ in frames:
                row = self.store.one("SELECT id FROM images WHERE file_name = ?", (file_name,))
                if row is None:
                    raise SequenceError(f"Frame {file_name} is not an image of this project.")
                taken = self.store.one("SELECT s.name FROM sequence_frames f JOIN sequences s ON s.id = f.sequence_id "
                                       "WHERE f.image_id = ?", (row["id"],))
                if taken is not None:
                    raise SequenceError(f"Frame {file_name} already belongs to sequence {taken['name']!r}.")
                ids.append(int(row["id"]))
            cur = self.store.execute(
                "INSERT INTO sequences (name, folder, source, fps, truncated, error, extra, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, folder, source, fps, int(truncated), error, dumps(extra or {}), now()))
            seq_id = int(cur.lastrowid)
            for index, (image_id, (_, stamp)) in enumerate(zip(ids, frames)):
                self.store.execute("INSERT INTO sequence_frames (sequence_id, frame_index, image_id, timestamp) "
                                   "VALUES (?, ?, ?, ?)", (seq_id, index, image_id, stamp))
        return self.get(seq_id)

    def frames(self, sequence_id: int) -> list[FrameRecord]:
        rows = self.store.query(
            "SELECT f.frame_index, f.image_id, f.timestamp, i.file_name FROM sequence_frames f "
            "JOIN images i ON i.id = f.image_id WHERE f.sequence_id = ? ORDER BY f.frame_index", (int(sequence_id),))
        return [FrameRecord(int(r["frame_index"]), int(r["image_id"]), str(r["file_name"]),
                            None if r["timestamp"] is None else float(r["timestamp"])) for r in rows]

    def of_image(self, image_id: int) -> tuple[SequenceRecord, int] | None:
        """(sequence, frame index) of an image that is a frame, else None."""
        row = self.store.one("SELECT sequence_id, frame_index FROM sequence_frames WHERE image_id = ?",
                             (int(image_id),))
        return None if row is None else (self.get(row["sequence_id"]), int(row["frame_index"]))

    def unique_name(self, wanted: str) -> str:
        """`wanted`, or `wanted-2`, `wanted-3`... when taken."""
        name, n = wanted, 1
        while self.store.one("SELECT 1 FROM sequences WHERE name = ?", (name,)) is not None:
            n += 1
            name = f"{wanted}-{n}"
        return name
