"""The Project facade: the one API the GUI, CLI, engine workers and voice commands use.

A project is a folder of images (the images root) plus a store file, by default
`<images_root>/.seem-annotator/project.sqlite`; a store elsewhere is allowed (read-only image
folders). Every mutating method is one transaction, committed before it returns, and every user
action on an image's objects goes into that image's linear undo history (`undo`/`redo`).

    with Project.open_or_create("photos/") as project:
        image = project.images()[0]
        session = project.start_session(image.id)
        project.add_round(session.id, (PointPrompt(10, 20),), "seem-focalt", rle, [("dog", 0.9)])
        dog = project.label_by_name("dog") or project.add_label("dog")
        project.accept_session(session.id, dog.id)
        project.undo(image.id)   # the object is back in progress, its last round current

Ids handed out (images, labels, sessions, rounds, annotations) are stable and never reused.
Label-set changes (add, rename, colour, merge, delete) and imports are project-wide and not part of
the per-image undo history; merging or deleting a label keeps that history consistent.
After `undo`/`redo` re-read what is shown (`current_session`, `annotations`): a session whose
first round was undone no longer exists.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from seem_annotator.core import annotations as ann_ops
from seem_annotator.core import history, review, sessions, transfer
from seem_annotator.core import images as imgio
from seem_annotator.core import labels as label_ops
from seem_annotator.core import runs as run_store
from seem_annotator.core.catalog import Catalog
from seem_annotator.core.prompts import Prompt
from seem_annotator.core.records import AnnotationRecord, Dataset, ImageRecord, LabelRecord
from seem_annotator.core.rounds import OPEN, ObjectSession, Round
from seem_annotator.core.sequences import Sequences
from seem_annotator.core.store import DEFAULT_DIRNAME, DEFAULT_FILENAME, Store, now
from seem_annotator.core.tracks import Tracks
from seem_annotator.core.transfer import ImportRecord
from seem_annotator.core.transfer import import_dataset as _import_dataset
from seem_annotator.core.video_fields import with_video_fields
from seem_annotator.errors import StoreError

Progress = Callable[[int, int], None]


def default_store_path(images_root: str | os.PathLike) -> Path:
    """`<images_root>/.seem-annotator/project.sqlite`."""
    return Path(images_root) / DEFAULT_DIRNAME / DEFAULT_FILENAME


class Project:
    """An open project. Build with `create`, `open` or `open_or_create`; use as a context manager
    or call `close()`."""

    def __init__(self, store: Store, root: Path) -> None:
        self._store = store
        self._root = root
        self._catalog = Catalog(store, root)
        self.sequences = Sequences(store)  # videos and frame folders (frames are images)
        self.tracks = Tracks(store)  # objects across frames: keyframes and propagated masks

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def create(cls, images_root: str | os.PathLike, store_path: str | os.PathLike | None = None,
               progress: Progress | None = None) -> Project:
        """A new project over the images under `images_root` (scanned now; unreadable files are
        listed with `readable=False`). Refused when a store already exists at `store_path`."""
        root = Path(images_root).resolve()
        if not root.is_dir():
            raise StoreError(f"The images folder {root} does not exist or is not a folder.")
        path = Path(store_path).resolve() if store_path is not None else default_store_path(root)
        if path.is_dir():
            path = path / DEFAULT_FILENAME
        try:
            store = Store(path, create=True)
        except StoreError:
            raise
        except OSError as exc:
            raise StoreError(f"Cannot create the project store at {path} ({exc.strerror or exc}); "
                             "pass a store path in a writable folder.") from exc
        try:
            with store.transaction():
                try:
                    rel = os.path.relpath(root, path.parent)
                except ValueError:  # different drives on Windows
                    rel = str(root)
                inside = path.parent == root / DEFAULT_DIRNAME
                store.execute("INSERT INTO meta(key, value) VALUES ('images_root', ?)",
                              (rel if inside else str(root),))
                store.execute("INSERT INTO meta(key, value) VALUES ('created_at', ?)", (repr(now()),))
            project = cls(store, root)
            project.rescan(progress)
        except BaseException:
            store.close()
            raise
        return project

    @classmethod
    def open(cls, path: str | os.PathLike, read_only: bool = False) -> Project:
        """Open an existing project: `path` is the images folder (default store inside it) or the
        store file itself. `read_only` takes no writer lock and refuses changes."""
        path = Path(path)
        store_path = default_store_path(path) if path.is_dir() else path
        if path.is_dir() and not store_path.is_file():
            raise StoreError(f"{path} has no seem-annotator project yet; create one first with "
                             f"'seem-annotator init {path}'.")
        store = Store(store_path, read_only=read_only)
        try:
            raw = store.get_meta("images_root")
            if raw is None and store_path.resolve().parent.name == DEFAULT_DIRNAME and not read_only:
                # Killed while being created in the default place: the images root is implied.
                raw = ".."
                store.set_meta("images_root", raw)
            if raw is None:
                raise StoreError(f"The project store {store_path} has no images folder recorded.")
            root = Path(raw)
            if not root.is_absolute():
                root = (store_path.resolve().parent / root).resolve()
        except BaseException:
            store.close()
            raise
        project = cls(store, root)
        if not read_only and store.get_meta("scanned") is None:
            # Killed between creating the store and finishing the first scan: finish it now.
            try:
                project.rescan()
            except BaseException:
                project.close()
                raise
        return project

    @classmethod
    def open_or_create(cls, folder: str | os.PathLike, progress: Progress | None = None) -> Project:
        """Open the project in `folder`, creating it (and scanning the images) when there is none."""
        if default_store_path(folder).is_file():
            return cls.open(folder)
        return cls.create(folder, progress=progress)

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def root(self) -> Path:
        """The images root: `ImageRecord.file_name` is relative to it."""
        return self._root

    @property
    def store_path(self) -> Path:
        return self._store.path

    @property
    def read_only(self) -> bool:
        return self._store.read_only

    @property
    def store(self) -> Store:
        """The open store, for the core modules that work on it directly (runs, review)."""
        return self._store

    # -- images ----------------------------------------------------------------------------------

    def images(self) -> list[ImageRecord]:
        """Every image, sorted by file name."""
        return self._catalog.images()

    def image(self, image_id: int) -> ImageRecord:
        return self._catalog.image(image_id)

    def image_by_name(self, file_name: str) -> ImageRecord | None:
        return self._catalog.image_by_name(file_name)

    def image_path(self, image_id: int) -> Path:
        return self._root / self.image(image_id).file_name

    def rescan(self, progress: Progress | None = None) -> dict[str, int]:
        """Bring the project in line with its folder: add image files that appeared, re-read
        unreadable ones and files whose size or modification time changed (a new hash; a file now
        of another size than its annotations is set aside as unreadable, annotations kept, until
        the original is back), mark vanished ones unreadable. Returns counts: added, recovered,
        changed (same size, new content), resized, missing, unreadable."""
        return self._catalog.rescan(progress)

    def add_scanned(self, scans: list[imgio.ScannedImage]) -> int:
        """Add image files just written and probed elsewhere (`imgio.probe`) without a rescan: the
        slow part (hashing, decoding) can then run on another thread. Returns how many were new."""
        return self._catalog.add_scanned(scans)

    @staticmethod
    def describe_rescan(summary: dict[str, int]) -> str:
        """One line for a person about what `rescan` found ("" when nothing changed)."""
        words = {"added": "new", "recovered": "readable again", "changed": "changed on disk",
                 "resized": "set aside (a different size than their annotations)", "missing": "missing"}
        parts = [f"{summary[key]} {text}" for key, text in words.items() if summary.get(key)]
        return ("Images: " + ", ".join(parts) + ".") if parts else ""

    def set_image_status(self, image_id: int, status: str | None) -> ImageRecord:
        """Mark an image "done" (or "in_progress"/"untouched"); None goes back to the derived
        status (in_progress when it has annotations or an object in progress, else untouched)."""
        return self._catalog.set_status(image_id, status)

    def load_image(self, image_id: int) -> Any:
        """Full-resolution (H, W, 3) uint8 RGB, EXIF-oriented (see core.images.load_image)."""
        return imgio.load_image(self.image_path(image_id))

    def load_for_model(self, image_id: int, max_side: int = 1024) -> imgio.ProxyImage:
        """A bounded proxy plus the full (H, W) (see core.images.load_for_model)."""
        return imgio.load_for_model(self.image_path(image_id), max_side)

    # -- labels ----------------------------------------------------------------------------------

    def labels(self) -> list[LabelRecord]:
        return label_ops.list_labels(self._store)

    def label(self, label_id: int) -> LabelRecord:
        return label_ops.get_label(self._store, label_id)

    def label_by_name(self, name: str) -> LabelRecord | None:
        """Case-insensitive lookup (whitespace-normalised)."""
        return label_ops.find_by_name(self._store, name)

    def add_label(self, name: str, color: str | Sequence[int] | None = None,
                  shortcut: int | None = None) -> LabelRecord:
        """New label; colour defaults to a distinct one; a shortcut digit moves from any other label."""
        return label_ops.add_label(self._store, name, color, shortcut)

    def ensure_label(self, name: str) -> LabelRecord:
        """The label with this name (case-insensitive), created with a default colour if absent."""
        return self.label_by_name(name) or self.add_label(name)

    def rename_label(self, label_id: int, new_name: str) -> LabelRecord:
        return label_ops.rename_label(self._store, label_id, new_name)

    def set_label_color(self, label_id: int, color: str | Sequence[int]) -> LabelRecord:
        return label_ops.set_label_color(self._store, label_id, color)

    def set_label_shortcut(self, label_id: int, shortcut: int | None) -> LabelRecord:
        return label_ops.set_label_shortcut(self._store, label_id, shortcut)

    def merge_labels(self, src_id: int, dst_id: int) -> LabelRecord:
        """Move every annotation of `src_id` to `dst_id` and delete `src_id`."""
        return label_ops.merge_labels(self._store, src_id, dst_id)

    def delete_label(self, label_id: int, reassign_to: int | None = None) -> None:
        """Delete a label; refused (LabelError) while used unless `reassign_to` is given."""
        label_ops.delete_label(self._store, label_id, reassign_to)

    def label_counts(self) -> dict[int, int]:
        """label id -> annotation count (every label, zeros included)."""
        return label_ops.label_counts(self._store)

    # -- object sessions -------------------------------------------------------------------------

    def start_session(self, image_id: int) -> ObjectSession:
        """A new empty object session on the image (an existing empty one is reused; SessionError
        when another object with rounds is in progress)."""
        return sessions.start(self._store, image_id)

    def current_session(self, image_id: int) -> ObjectSession | None:
        """The image's in-progress object (persisted; survives a restart), or None."""
        with self._store.locked():
            return sessions.current(self._store, image_id)

    def session(self, session_id: int) -> ObjectSession:
        with self._store.locked():
            return sessions.load(self._store, session_id)

    def add_round(self, session_id: int, prompts: tuple[Prompt, ...], backend: str, mask_rle: dict | None,
                  label_proposals: list[tuple[str, float]], score: float | None = None) -> Round:
        """Record one round: the prompts added in it, the backend/model name, the candidate mask
        (RLE at the image's full oriented size, or None) and label proposals (name, probability)."""
        return sessions.add_round(self._store, session_id, prompts, backend, mask_rle, label_proposals, score)

    def discard_session(self, session_id: int) -> None:
        sessions.discard(self._store, session_id)

    def accept_session(self, session_id: int, label_id: int, mask_rle: dict | None = None,
                       score: float | None = None) -> AnnotationRecord:
        """Turn the object into an annotation; `mask_rle` (an edited mask) overrides the last round's."""
        return sessions.accept(self._store, session_id, label_id, mask_rle, score)

    # -- annotations -----------------------------------------------------------------------------

    def annotations(self, image_id: int | None = None) -> list[AnnotationRecord]:
        """Annotations of one image (or all), bottom-to-top z-order."""
        return ann_ops.list_for(self._store, image_id)

    def annotation(self, ann_id: int) -> AnnotationRecord:
        return ann_ops.get(self._store, ann_id)

    def relabel(self, ann_id: int, label_id: int) -> AnnotationRecord:
        return ann_ops.relabel(self._store, ann_id, label_id)

    def set_mask(self, ann_id: int, rle: dict) -> AnnotationRecord:
        """Replace the mask (brush/eraser edit)."""
        return ann_ops.set_mask(self._store, ann_id, rle)

    def merge(self, ann_ids: Sequence[int]) -> AnnotationRecord:
        """One new annotation from the union of same-image annotations (which are removed)."""
        return ann_ops.merge(self._store, list(ann_ids))

    def subtract(self, ann_id: int, other_id: int) -> AnnotationRecord:
        """Cut `other_id`'s pixels out of `ann_id` (a hole when inside); `other_id` stays."""
        return ann_ops.subtract(self._store, ann_id, other_id)

    def split(self, ann_id: int) -> list[AnnotationRecord]:
        """Disconnected parts become separate annotations (the first keeps `ann_id`)."""
        return ann_ops.split(self._store, ann_id)

    def delete(self, ann_id: int) -> None:
        ann_ops.delete(self._store, ann_id)

    def reorder(self, ann_id: int, new_order: int) -> list[AnnotationRecord]:
        """Move to stack position `new_order` (0 = bottom); returns the image's stack bottom-up."""
        return ann_ops.reorder(self._store, ann_id, new_order)

    def raise_(self, ann_id: int) -> list[AnnotationRecord]:
        """One step towards the top."""
        pos, _ = ann_ops.position(self._store, ann_id)
        return self.reorder(ann_id, pos + 1)

    def lower(self, ann_id: int) -> list[AnnotationRecord]:
        """One step towards the bottom."""
        pos, _ = ann_ops.position(self._store, ann_id)
        return self.reorder(ann_id, max(0, pos - 1))

    # -- auto-annotation proposals (see core.runs, core.review) -------------------------------------

    def proposals(self, image_id: int | None = None, state: str | None = run_store.PENDING) -> list[run_store.ProposalRecord]:
        """Proposals of one image (or all), pending by default (`state=None`: every state)."""
        return run_store.list_proposals(self._store, image_id, state)

    def pending_proposal_count(self) -> int:
        """How many proposals are waiting for review, project-wide."""
        return run_store.pending_count(self._store)

    def pending_proposal_labels(self) -> list[str]:
        return run_store.pending_labels(self._store)

    def images_with_pending_proposals(self, min_score: float = 0.0) -> list[int]:
        return run_store.pending_image_ids(self._store, min_score)

    def runs(self) -> list[run_store.RunRecord]:
        return run_store.list_runs(self._store)

    def accept_proposal(self, proposal_id: int, label: str | None = None,
                        reviewed_by: str | None = None, rle: dict | None = None) -> AnnotationRecord:
        """The proposal becomes an annotation keeping its provenance (one undoable step); `rle`
        replaces the proposed mask when a person refined it."""
        return review.accept(self._store, proposal_id, label, reviewed_by, rle)

    def reject_proposal(self, proposal_id: int) -> None:
        review.reject(self._store, proposal_id)

    def relabel_proposal(self, proposal_id: int, label: str) -> run_store.ProposalRecord:
        return review.relabel(self._store, proposal_id, label)

    def accept_proposals_above(self, image_id: int, threshold: float,
                               reviewed_by: str | None = None) -> list[AnnotationRecord]:
        """Accept every pending proposal of the image scoring `threshold` or more (one step)."""
        return review.accept_above(self._store, image_id, threshold, reviewed_by)

    def review_states(self) -> dict[int, str]:
        """image id -> "untouched" | "review" (pending proposals) | "in_progress" | "done"."""
        return run_store.review_states(self._store)

    # -- undo / redo -----------------------------------------------------------------------------

    def undo(self, image_id: int) -> str | None:
        """Revert the image's latest action (the name of the action, or None when none is left)."""
        with self._store.transaction():
            action = history.undo(self._store, int(image_id))
            self._drop_stale_empty_sessions(int(image_id))
            return action

    def redo(self, image_id: int) -> str | None:
        """Re-apply the latest undone action (its name, or None)."""
        with self._store.transaction():
            action = history.redo(self._store, int(image_id))
            self._drop_stale_empty_sessions(int(image_id))
            return action

    def can_undo(self, image_id: int) -> bool:
        return history.can_undo(self._store, int(image_id))

    def can_redo(self, image_id: int) -> bool:
        return history.can_redo(self._store, int(image_id))

    def history(self, image_id: int) -> list[tuple[str, bool]]:
        """(action, undone) pairs of the image's history, oldest first."""
        return history.entries(self._store, int(image_id))

    def _drop_stale_empty_sessions(self, image_id: int) -> None:
        # An empty open session (never in the history) next to one that regained rounds is noise.
        self._store.execute(
            "DELETE FROM sessions WHERE image_id = ? AND state = ? AND id NOT IN (SELECT session_id FROM rounds) "
            "AND EXISTS (SELECT 1 FROM sessions s JOIN rounds r ON r.session_id = s.id "
            "WHERE s.image_id = ? AND s.state = ?) "
            "AND id NOT IN (SELECT json_extract(value, '$.id') FROM history, json_each(history.changes) "
            "WHERE history.image_id = ? AND json_extract(value, '$.table') = 'sessions')",
            (image_id, OPEN, image_id, OPEN, image_id))

    # -- whole project ---------------------------------------------------------------------------

    def snapshot(self, include_proposals: bool = False) -> Dataset:
        """Every image, label and annotation as a self-contained Dataset (root = images root), with
        sequence and track fields for exporters where there are sequences (core.video_fields);
        `include_proposals` adds the pending proposals, marked as such (see core.runs)."""
        with self._store.locked():
            dataset = Dataset(images=self.images(), labels=self.labels(), annotations=self.annotations(),
                              root=str(self._root))
            if include_proposals:
                run_store.add_pending_to(dataset, self._store)
            return with_video_fields(self._store, dataset)

    def import_dataset(self, dataset: Dataset, progress: Progress | None = None, source: str = "") -> dict[str, int]:
        """Add a Dataset in one transaction (all or nothing). Images match by file_name, labels by
        name (case-insensitive); annotations are added on top. Returns counts: images_added,
        images_matched, labels_added, labels_matched, annotations_added. It becomes the import that
        `undo_last_import` takes back; `source` names it for the user."""
        return _import_dataset(self._store, self._catalog, dataset, progress, source)

    def last_import(self) -> ImportRecord | None:
        """The newest import, while it can be taken back (undo_last_import)."""
        return transfer.last_import(self._store)

    def import_still_present(self, record: ImportRecord) -> tuple[int, int]:
        """(annotations of that import still in the project, those of them edited since)."""
        return transfer.edited_since_import(self._store, record)

    def undo_last_import(self) -> dict[str, int] | None:
        """Take back the newest import (transfer.undo_last_import): counts of what went, or None."""
        return transfer.undo_last_import(self._store)

    def info(self) -> dict[str, Any]:
        """Counts for `seem-annotator info`: images, annotations, labels (name -> count),
        in_progress (open objects with rounds), unreadable, done, proposals (pending review), plus root
        and store paths."""
        with self._store.locked():
            counts = self.label_counts()
            labels = {label.name: counts.get(label.id, 0) for label in self.labels()}
            images = self.images()
            n_annotations = self._store.one("SELECT COUNT(*) AS n FROM annotations")["n"]
            in_progress = self._store.one(
                "SELECT COUNT(DISTINCT s.id) AS n FROM sessions s JOIN rounds r ON r.session_id = s.id "
                "WHERE s.state = ?", (OPEN,))["n"]
            pending = run_store.pending_count(self._store)
        return {
            "root": str(self._root),
            "store": str(self._store.path),
            "images": len(images),
            "annotations": int(n_annotations),
            "labels": labels,
            "in_progress": int(in_progress),
            "unreadable": sum(1 for i in images if not i.readable),
            "done": sum(1 for i in images if i.status == "done"),
            "proposals": pending,
        }
