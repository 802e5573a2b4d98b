"""Label names, colours and keyboard shortcuts: validation and defaults.

Names are compared case-insensitively ("Dog" and "dog" are one label) after trimming and collapsing
inner whitespace. Colours are RGB triples; a new label's default colour is the palette colour
farthest from those the project's labels already have (core/palette.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from seem_annotator.core import palette
from seem_annotator.core.records import RGB, LabelRecord
from seem_annotator.core.store import Store, dumps
from seem_annotator.errors import UserError

MAX_NAME_LENGTH = 200


class LabelError(UserError):
    """A label name, colour or shortcut is invalid, duplicated, unknown or still in use."""


def normalize_name(name: str) -> str:
    """The canonical spelling of a label name: trimmed, inner whitespace collapsed to one space.

    Raises LabelError for an empty, over-long or control-character name.
    """
    if not isinstance(name, str):
        raise LabelError(f"A label name must be text, got {type(name).__name__}.")
    clean = re.sub(r"\s+", " ", name).strip()
    if not clean:
        raise LabelError("A label name cannot be empty.")
    if len(clean) > MAX_NAME_LENGTH:
        raise LabelError(f"The label name {clean[:40]!r}... is longer than {MAX_NAME_LENGTH} characters.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in clean):
        raise LabelError(f"The label name {clean!r} contains control characters.")
    return clean


def name_key(name: str) -> str:
    """Key for case-insensitive comparison of label names."""
    return normalize_name(name).casefold()


def parse_color(color: str | Sequence[int]) -> RGB:
    """An RGB triple from "#rrggbb", "#rgb", "rrggbb" or a 3-sequence of 0..255 ints."""
    if isinstance(color, str):
        text = color.strip().lstrip("#")
        if len(text) == 3:
            text = "".join(ch * 2 for ch in text)
        if len(text) != 6 or not re.fullmatch(r"[0-9a-fA-F]{6}", text):
            raise LabelError(f"{color!r} is not a colour; use #rrggbb.")
        return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))
    try:
        values = [int(v) for v in color]
    except (TypeError, ValueError) as exc:
        raise LabelError(f"{color!r} is not a colour; use three numbers 0..255 or #rrggbb.") from exc
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise LabelError(f"{color!r} is not a colour; use three numbers 0..255 or #rrggbb.")
    return (values[0], values[1], values[2])


def color_hex(color: RGB) -> str:
    """"#rrggbb" of an RGB triple."""
    return "#{:02x}{:02x}{:02x}".format(*color)


def default_color(index: int) -> RGB:
    """The colour the index-th label gets when every earlier one kept its default."""
    return palette.default_color(index)


def validate_shortcut(shortcut: int | str | None) -> int | None:
    """A keyboard digit 0..9 (None for no shortcut)."""
    if shortcut is None or shortcut == "":
        return None
    try:
        digit = int(shortcut)
    except (TypeError, ValueError) as exc:
        raise LabelError(f"A label shortcut must be a digit 0..9, got {shortcut!r}.") from exc
    if not 0 <= digit <= 9 or isinstance(shortcut, float) and shortcut != digit:
        raise LabelError(f"A label shortcut must be a digit 0..9, got {shortcut!r}.")
    return digit


# -- label table operations (called by Project inside its store) ---------------------------------

def record_from_row(row: Any) -> LabelRecord:
    return LabelRecord(id=int(row["id"]), name=str(row["name"]), color=tuple(json.loads(row["color"])),
                       shortcut=row["shortcut"], extra=json.loads(row["extra"]))


def list_labels(store: Store) -> list[LabelRecord]:
    return [record_from_row(r) for r in store.query("SELECT * FROM labels WHERE deleted = 0 ORDER BY id")]


def get_label(store: Store, label_id: int) -> LabelRecord:
    row = store.one("SELECT * FROM labels WHERE id = ? AND deleted = 0", (int(label_id),))
    if row is None:
        raise LabelError(f"Label {label_id} does not exist.")
    return record_from_row(row)


def find_by_name(store: Store, name: str) -> LabelRecord | None:
    """The live label with this name, compared case-insensitively (None when absent)."""
    try:
        key = name_key(name)
    except LabelError:
        return None
    for label in list_labels(store):
        if label.name.casefold() == key:
            return label
    return None


def _any_row_named(store: Store, name: str) -> Any:
    key = name_key(name)
    for row in store.query("SELECT * FROM labels"):
        if str(row["name"]).casefold() == key:
            return row
    return None


def _take_shortcut(store: Store, shortcut: int | None, owner: int | None) -> None:
    # A digit belongs to one label: giving it to a label takes it from any other.
    if shortcut is not None:
        store.execute("UPDATE labels SET shortcut = NULL WHERE shortcut = ? AND id IS NOT ?", (shortcut, owner))


def add_label(store: Store, name: str, color: str | Sequence[int] | None = None,
              shortcut: int | None = None, extra: dict | None = None, label_id: int | None = None) -> LabelRecord:
    """Create a label (or bring back a deleted one of the same name). `label_id` asks for a
    specific id, honoured only when no label ever had it (importers use it to keep category ids)."""
    clean = normalize_name(name)
    digit = validate_shortcut(shortcut)
    with store.transaction():
        row = _any_row_named(store, clean)
        if row is not None and not row["deleted"]:
            raise LabelError(f"A label named {row['name']!r} already exists.")
        if color is None:
            taken = [tuple(json.loads(r["color"])) for r in store.query("SELECT color FROM labels WHERE deleted = 0")]
            rgb = palette.pick_color(taken)
        else:
            rgb = parse_color(color)
        _take_shortcut(store, digit, None)
        if row is not None:  # revive the deleted one so its id stays stable
            store.execute("UPDATE labels SET name = ?, color = ?, shortcut = ?, extra = ?, deleted = 0 "
                          "WHERE id = ?", (clean, dumps(list(rgb)), digit, dumps(extra or {}), row["id"]))
            return get_label(store, row["id"])
        if label_id is not None and int(label_id) > 0 and \
                store.one("SELECT 1 FROM labels WHERE id = ?", (int(label_id),)) is None and \
                store.one("SELECT 1 FROM sqlite_sequence WHERE name = 'labels' AND seq >= ?",
                          (int(label_id),)) is None:
            cur = store.execute("INSERT INTO labels (id, name, color, shortcut, extra) VALUES (?, ?, ?, ?, ?)",
                                (int(label_id), clean, dumps(list(rgb)), digit, dumps(extra or {})))
        else:
            cur = store.execute("INSERT INTO labels (name, color, shortcut, extra) VALUES (?, ?, ?, ?)",
                                (clean, dumps(list(rgb)), digit, dumps(extra or {})))
        return get_label(store, int(cur.lastrowid))


def merge_extra(store: Store, label_id: int, extra: dict) -> None:
    """Add an importer's label-level fields to an existing label (imported values win)."""
    if not extra:
        return
    row = store.one("SELECT extra FROM labels WHERE id = ?", (int(label_id),))
    merged = {**json.loads(row["extra"]), **extra}
    store.execute("UPDATE labels SET extra = ? WHERE id = ?", (dumps(merged), int(label_id)))


def rename_label(store: Store, label_id: int, new_name: str) -> LabelRecord:
    clean = normalize_name(new_name)
    with store.transaction():
        label = get_label(store, label_id)
        other = _any_row_named(store, clean)
        if other is not None and other["id"] != label.id:
            if not other["deleted"]:
                raise LabelError(f"A label named {other['name']!r} already exists; merge the labels instead.")
            # A deleted label holds the name: free it (nothing live refers to it).
            store.execute("UPDATE labels SET name = ? WHERE id = ?", (f"{other['name']} (deleted {other['id']})",
                                                                      other["id"]))
        store.execute("UPDATE labels SET name = ? WHERE id = ?", (clean, label.id))
        return get_label(store, label.id)


def set_label_color(store: Store, label_id: int, color: str | Sequence[int]) -> LabelRecord:
    rgb = parse_color(color)
    with store.transaction():
        get_label(store, label_id)
        store.execute("UPDATE labels SET color = ? WHERE id = ?", (dumps(list(rgb)), int(label_id)))
        return get_label(store, label_id)


def set_label_shortcut(store: Store, label_id: int, shortcut: int | None) -> LabelRecord:
    digit = validate_shortcut(shortcut)
    with store.transaction():
        get_label(store, label_id)
        _take_shortcut(store, digit, int(label_id))
        store.execute("UPDATE labels SET shortcut = ? WHERE id = ?", (digit, int(label_id)))
        return get_label(store, label_id)


def merge_labels(store: Store, src_id: int, dst_id: int) -> LabelRecord:
    """Every annotation of `src` becomes `dst` (history included, so undo never revives `src`);
    `src` is deleted. Returns `dst`."""
    from seem_annotator.core.history import rewrite_label

    if int(src_id) == int(dst_id):
        raise LabelError("A label cannot be merged into itself.")
    with store.transaction():
        get_label(store, src_id)
        dst = get_label(store, dst_id)
        store.execute("UPDATE annotations SET label_id = ? WHERE label_id = ?", (dst.id, int(src_id)))
        rewrite_label(store, int(src_id), dst.id)
        store.execute("UPDATE labels SET deleted = 1, shortcut = NULL WHERE id = ?", (int(src_id),))
        return dst


def delete_label(store: Store, label_id: int, reassign_to: int | None = None) -> None:
    """Delete a label. Refused while annotations use it unless `reassign_to` names the label they
    move to (a merge)."""
    with store.transaction():
        label = get_label(store, label_id)
        if reassign_to is not None:
            merge_labels(store, label.id, reassign_to)
            return
        used = store.one("SELECT COUNT(*) AS n FROM annotations WHERE label_id = ?", (label.id,))["n"]
        if used:
            raise LabelError(f"The label {label.name!r} is used by {used} annotation(s); "
                             "reassign them to another label first.")
        # Soft delete: an undo that brings back an annotation of this label brings the label back.
        store.execute("UPDATE labels SET deleted = 1, shortcut = NULL WHERE id = ?", (label.id,))


def label_counts(store: Store) -> dict[int, int]:
    """label id -> number of annotations, for every live label (0 included)."""
    counts = {label.id: 0 for label in list_labels(store)}
    for row in store.query("SELECT label_id, COUNT(*) AS n FROM annotations GROUP BY label_id"):
        counts[int(row["label_id"])] = int(row["n"])
    return counts
