"""The images table: scanning the images root, records with derived status.

Status: a status the user set (e.g. "done") wins; otherwise an image with annotations or an object
in progress is "in_progress", else "untouched".
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from seem_annotator.core import images as imgio
from seem_annotator.core.records import ImageRecord
from seem_annotator.core.store import Store, dumps
from seem_annotator.errors import UserError

STATUSES = ("untouched", "in_progress", "done")

_SELECT = """
SELECT i.*, CASE
    WHEN i.status IS NOT NULL THEN i.status
    WHEN EXISTS (SELECT 1 FROM annotations a WHERE a.image_id = i.id) THEN 'in_progress'
    WHEN EXISTS (SELECT 1 FROM sessions s JOIN rounds r ON r.session_id = s.id
                 WHERE s.image_id = i.id AND s.state = 'open') THEN 'in_progress'
    ELSE 'untouched' END AS derived_status
FROM images i
"""


# Known images for a rescan, with whether anything was drawn at their stored size.
_KNOWN = """
SELECT i.id, i.file_name, i.readable, i.width, i.height, i.sha256, i.file_size, i.mtime_ns,
    EXISTS (SELECT 1 FROM annotations a WHERE a.image_id = i.id)
    OR EXISTS (SELECT 1 FROM sessions s JOIN rounds r ON r.session_id = s.id WHERE s.image_id = i.id)
    AS has_work
FROM images i
"""


def record_from_row(row: Any) -> ImageRecord:
    return ImageRecord(id=int(row["id"]), file_name=str(row["file_name"]), width=int(row["width"]),
                       height=int(row["height"]), sha256=row["sha256"], status=str(row["derived_status"]),
                       readable=bool(row["readable"]), error=row["error"], extra=json.loads(row["extra"]))


class Catalog:
    """Image rows of one store, relative to the images root."""

    def __init__(self, store: Store, root: Path) -> None:
        self.store = store
        self.root = root

    def images(self) -> list[ImageRecord]:
        return [record_from_row(r) for r in self.store.query(_SELECT + " ORDER BY i.file_name")]

    def image(self, image_id: int) -> ImageRecord:
        row = self.store.one(_SELECT + " WHERE i.id = ?", (int(image_id),))
        if row is None:
            raise UserError(f"Image {image_id} is not part of this project.")
        return record_from_row(row)

    def image_by_name(self, file_name: str) -> ImageRecord | None:
        row = self.store.one(_SELECT + " WHERE i.file_name = ?", (Path(file_name).as_posix(),))
        return None if row is None else record_from_row(row)

    def merge_extra(self, image_id: int, extra: dict) -> None:
        """Add an importer's image-level fields (LabelMe flags, unknown keys) to an existing image,
        the imported values winning (inside the caller's transaction)."""
        if not extra:
            return
        row = self.store.one("SELECT extra FROM images WHERE id = ?", (int(image_id),))
        merged = {**json.loads(row["extra"]), **extra}
        self.store.execute("UPDATE images SET extra = ? WHERE id = ?", (dumps(merged), int(image_id)))

    def insert(self, file_name: str, width: int, height: int, sha256: str | None, readable: bool,
               error: str | None, extra: dict | None = None, file_size: int | None = None,
               mtime_ns: int | None = None) -> int:
        """Add an image row (inside the caller's transaction); returns its id."""
        cur = self.store.execute(
            "INSERT INTO images (file_name, width, height, sha256, readable, error, extra, file_size, mtime_ns) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (file_name, int(width), int(height), sha256, int(readable), error, dumps(extra or {}), file_size,
             mtime_ns))
        return int(cur.lastrowid)

    def rescan(self, progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
        known = {r["file_name"]: r for r in self.store.query(_KNOWN)}
        on_disk = list(imgio.iter_image_files(self.root)) if self.root.is_dir() else []
        # Known, readable files are re-read only when their size or modification time changed.
        todo, first_stats = [], {}
        for name in on_disk:
            row = known.get(name)
            if row is None or not row["readable"]:
                todo.append(name)
                continue
            try:
                stat = (self.root / name).stat()
            except OSError:
                todo.append(name)  # the probe says why
                continue
            current = (stat.st_size, stat.st_mtime_ns)
            if row["file_size"] is None:
                first_stats[name] = current  # recorded from now on; the stored hash stands
            elif current != (row["file_size"], row["mtime_ns"]):
                todo.append(name)
        # Probe outside the transaction (slow: hashes and decodes); write all at once.
        probed = []
        # Hashing and decoding release the GIL: a few threads make a first scan of a big folder
        # several times faster.
        workers = max(1, min(8, os.cpu_count() or 1, len(todo)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for i, scan in enumerate(pool.map(lambda n: imgio.probe(self.root, n), todo)):
                probed.append(scan)
                if progress:
                    progress(i + 1, len(todo))
        present = set(on_disk)
        summary = {"added": 0, "recovered": 0, "changed": 0, "resized": 0, "missing": 0, "unreadable": 0}
        with self.store.transaction():
            for scan in probed:
                row = known.get(scan.file_name)
                if row is not None:
                    self._update(row, scan, summary)
                elif self._insert_new(scan):
                    summary["added"] += 1
                    summary["unreadable"] += int(not scan.readable)
            for name, (size, mtime) in first_stats.items():
                self.store.execute("UPDATE images SET file_size = ?, mtime_ns = ? WHERE file_name = ?",
                                   (size, mtime, name))
            for name, row in known.items():
                if name not in present and row["readable"]:
                    self.store.execute("UPDATE images SET readable = 0, error = ? WHERE id = ?",
                                       (f"{name} is missing from {self.root}.", row["id"]))
                    summary["missing"] += 1
            self.store.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('scanned', '1')")
        return summary

    def add_scanned(self, scans: list[imgio.ScannedImage]) -> int:
        """Add files the caller has just written and probed (`imgio.probe`, off the store's thread),
        without rescanning the folder; known names are left alone. Returns how many were added."""
        with self.store.transaction():
            return sum(self._insert_new(scan) for scan in scans)

    def _insert_new(self, scan: imgio.ScannedImage) -> bool:
        """Insert a probed file unless an image of that name exists (inside a transaction)."""
        if self.image_by_name(scan.file_name) is not None:
            return False
        self.insert(scan.file_name, scan.width, scan.height, scan.sha256, scan.readable, scan.error,
                    file_size=scan.file_size, mtime_ns=scan.mtime_ns)
        return True

    def _update(self, row: Any, scan: imgio.ScannedImage, summary: dict[str, int]) -> None:
        """A known image re-read from disk (inside the rescan's transaction). Its stored size never
        changes under annotations made at it: a file that now has another size is set aside
        (unreadable, with the reason) until the original is back."""
        if not scan.readable:
            self.store.execute("UPDATE images SET readable = 0, error = ? WHERE id = ?", (scan.error, row["id"]))
            summary["unreadable"] += 1
            return
        annotated_size = (int(row["width"]), int(row["height"]))
        if row["has_work"] and annotated_size != (0, 0) and (scan.width, scan.height) != annotated_size:
            error = (f"{scan.file_name} is now {scan.width}x{scan.height} but was annotated at "
                     f"{annotated_size[0]}x{annotated_size[1]}; its annotations are kept. Put the original file "
                     "back to work on it again.")
            self.store.execute("UPDATE images SET readable = 0, error = ? WHERE id = ?", (error, row["id"]))
            summary["resized"] += 1
            summary["unreadable"] += 1
            return
        self.store.execute(
            "UPDATE images SET width = ?, height = ?, sha256 = ?, readable = 1, error = NULL, file_size = ?, "
            "mtime_ns = ? WHERE id = ?",
            (scan.width, scan.height, scan.sha256, scan.file_size, scan.mtime_ns, row["id"]))
        if not row["readable"]:
            summary["recovered"] += 1
        elif row["sha256"] is not None and scan.sha256 != row["sha256"]:
            summary["changed"] += 1

    def set_status(self, image_id: int, status: str | None) -> ImageRecord:
        if status is not None and status not in STATUSES:
            raise UserError(f"Unknown image status {status!r}; use one of {', '.join(STATUSES)}.")
        with self.store.transaction():
            self.image(image_id)
            self.store.execute("UPDATE images SET status = ? WHERE id = ?", (status, int(image_id)))
        return self.image(image_id)
