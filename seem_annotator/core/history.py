"""Per-image linear undo/redo history, persisted in the store.

Every user action is recorded as the list of row changes it made, each `{table, id, before,
after}` with full row images (None = the row does not exist). Undo writes the `before` images back
in reverse order; redo writes the `after` images in order. This one mechanism covers every action
(round added, accept, discard, relabel, mask edit, merge, subtract, split, delete, reorder) without
per-action inverse code, and since the entries live in the same SQLite file and are written in the
same transaction as the change itself, undo works after a reopen, even after SIGKILL.

The history is linear per image: a new action deletes that image's undone (redo) entries. Row ids
come from AUTOINCREMENT, so a row removed by undo never has its id reused and redo can put it back
under the same id.
"""

from __future__ import annotations

import json
from typing import Any

from seem_annotator.core.store import Store, dumps, now

# Tables whose rows actions may change, and their columns (id first).
TABLES: dict[str, tuple[str, ...]] = {
    "sessions": ("id", "image_id", "state", "annotation_id", "created_at", "updated_at"),
    "rounds": ("id", "session_id", "idx", "prompts", "backend", "mask_rle", "label_proposals",
               "score", "created_at"),
    "annotations": ("id", "image_id", "label_id", "rle", "score", "iscrowd", "z", "source", "extra",
                    "created_at", "updated_at", "provenance", "reviewed_by", "reviewed_at"),
    "proposals": ("id", "run_id", "image_id", "label", "mode", "score", "rle", "bbox", "state",
                  "annotation_id", "created_at", "updated_at"),
    "track_frames": ("id", "track_id", "image_id", "annotation_id", "kind", "provenance", "confidence",
                     "flagged", "rle_digest", "created_at"),
}


def read_row(store: Store, table: str, row_id: int) -> dict[str, Any] | None:
    """The row as a plain dict, or None."""
    cols = TABLES[table]
    row = store.one(f"SELECT {', '.join(cols)} FROM {table} WHERE id = ?", (row_id,))
    return None if row is None else {c: row[c] for c in cols}


def write_row(store: Store, table: str, row_id: int, values: dict[str, Any] | None) -> None:
    """Make the row equal `values` (insert, update or, for None, delete)."""
    if values is None:
        store.execute(f"DELETE FROM {table} WHERE id = ?", (row_id,))
        return
    cols = TABLES[table]
    if table == "annotations":
        # Undo may bring back an annotation whose label was deleted since: bring the label back too.
        store.execute("UPDATE labels SET deleted = 0 WHERE id = ? AND deleted = 1", (values["label_id"],))
    # Row images recorded before a column existed lack it: it reads as NULL.
    if store.one(f"SELECT 1 FROM {table} WHERE id = ?", (row_id,)) is None:
        store.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                      [values.get(c) for c in cols])
    else:
        sets = ", ".join(f"{c} = ?" for c in cols[1:])
        store.execute(f"UPDATE {table} SET {sets} WHERE id = ?", [values.get(c) for c in cols[1:]] + [row_id])


class Recorder:
    """Collects the row changes of one action inside an open transaction.

    Use `insert`/`update`/`delete` instead of raw SQL for rows in `TABLES`, then `commit(action)`
    to append the history entry (and drop the image's redo branch).
    """

    def __init__(self, store: Store, image_id: int) -> None:
        self.store = store
        self.image_id = image_id
        self.changes: list[dict[str, Any]] = []

    def insert(self, table: str, values: dict[str, Any]) -> int:
        cols = [c for c in TABLES[table] if c != "id"]
        cur = self.store.execute(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            [values.get(c) for c in cols])
        row_id = int(cur.lastrowid)
        self.changes.append({"table": table, "id": row_id, "before": None,
                             "after": read_row(self.store, table, row_id)})
        return row_id

    def update(self, table: str, row_id: int, **values: Any) -> None:
        before = read_row(self.store, table, row_id)
        if before is None:
            raise KeyError(f"{table} row {row_id} does not exist")
        after = {**before, **values}
        write_row(self.store, table, row_id, after)
        self.changes.append({"table": table, "id": row_id, "before": before, "after": after})

    def delete(self, table: str, row_id: int) -> None:
        before = read_row(self.store, table, row_id)
        if before is None:
            return
        write_row(self.store, table, row_id, None)
        self.changes.append({"table": table, "id": row_id, "before": before, "after": None})

    def commit(self, action: str) -> int:
        """Append the history entry for this action; returns its id."""
        self.store.execute("DELETE FROM history WHERE image_id = ? AND undone = 1", (self.image_id,))
        cur = self.store.execute(
            "INSERT INTO history (image_id, action, changes, undone, created_at) VALUES (?, ?, ?, 0, ?)",
            (self.image_id, action, dumps(self.changes), now()))
        return int(cur.lastrowid)


def can_undo(store: Store, image_id: int) -> bool:
    return store.one("SELECT 1 FROM history WHERE image_id = ? AND undone = 0 LIMIT 1",
                     (image_id,)) is not None


def can_redo(store: Store, image_id: int) -> bool:
    return store.one("SELECT 1 FROM history WHERE image_id = ? AND undone = 1 LIMIT 1",
                     (image_id,)) is not None


def undo(store: Store, image_id: int) -> str | None:
    """Revert the image's latest action; returns its name, or None when there is nothing to undo.
    Call inside a transaction."""
    row = store.one("SELECT id, action, changes FROM history WHERE image_id = ? AND undone = 0 "
                    "ORDER BY id DESC LIMIT 1", (image_id,))
    if row is None:
        return None
    for change in reversed(json.loads(row["changes"])):
        write_row(store, change["table"], change["id"], change["before"])
    store.execute("UPDATE history SET undone = 1 WHERE id = ?", (row["id"],))
    return str(row["action"])


def redo(store: Store, image_id: int) -> str | None:
    """Re-apply the image's earliest undone action; returns its name, or None. Call inside a
    transaction."""
    row = store.one("SELECT id, action, changes FROM history WHERE image_id = ? AND undone = 1 "
                    "ORDER BY id ASC LIMIT 1", (image_id,))
    if row is None:
        return None
    for change in json.loads(row["changes"]):
        write_row(store, change["table"], change["id"], change["after"])
    store.execute("UPDATE history SET undone = 0 WHERE id = ?", (row["id"],))
    return str(row["action"])


def entries(store: Store, image_id: int) -> list[tuple[str, bool]]:
    """(action, undone) of the image's history, oldest first (for display and tests)."""
    return [(str(r["action"]), bool(r["undone"])) for r in
            store.query("SELECT action, undone FROM history WHERE image_id = ? ORDER BY id", (image_id,))]


def rewrite_label(store: Store, src_id: int, dst_id: int) -> None:
    """Point every annotation row image in the history from label `src_id` to `dst_id` (after a
    label merge), so undo/redo never resurrect the merged-away label. Call inside a transaction."""
    needle = f'"label_id":{int(src_id)}'
    rows = store.query("SELECT id, changes FROM history WHERE changes LIKE ?", (f"%{needle}%",))
    for row in rows:
        changes = json.loads(row["changes"])
        touched = False
        for change in changes:
            if change["table"] != "annotations":
                continue
            for key in ("before", "after"):
                image = change[key]
                if image is not None and image["label_id"] == src_id:
                    image["label_id"] = dst_id
                    touched = True
        if touched:
            store.execute("UPDATE history SET changes = ? WHERE id = ?", (dumps(changes), row["id"]))
