"""Auto-annotation runs and their proposals in the store (no model code here).

A run is identified by its settings key: asking for the same settings again finds the same run,
so an interrupted run resumes. Each image's outcome (its proposals, or the error that stopped
it) is merged with `merge_image` in one transaction: a run killed at any moment has every image
either fully merged or not at all, and a merged image is never redone.

Suppression: a new proposal is dropped when its mask overlaps an accepted annotation of the
image, or an earlier proposal of the same label (any run, any state, so a rejected proposal is
not proposed again), at `suppress_iou` or more.

Review states of an image (derived): "done" when the user marked it so, "review" while it has
pending proposals, "in_progress" when it has annotations or an object in progress, else
"untouched".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from seem_annotator.core import masks
from seem_annotator.core.store import Store, dumps, now

PENDING, ACCEPTED, REJECTED = "pending", "accepted", "rejected"
RUNNING, FINISHED = "running", "finished"
DONE, FAILED = "done", "failed"
REVIEW_STATES = ("untouched", "review", "in_progress", "done")


@dataclass
class RunRecord:
    id: int
    key: str
    settings: dict[str, Any]
    model: str
    checkpoint_sha256: str | None
    engine: str
    state: str
    started_at: float
    finished_at: float | None


@dataclass
class ProposalRecord:
    """A stored proposal: `rle` at the image's full oriented size, `bbox` [x, y, w, h]."""

    id: int
    run_id: int
    image_id: int
    label: str
    mode: str
    score: float
    rle: dict
    bbox: list[float]
    state: str
    annotation_id: int | None = None

    @property
    def provenance(self) -> str:
        """What an annotation made from it records as its source."""
        return f"run:{self.run_id}/{self.mode}"


def _run(row: Any) -> RunRecord:
    return RunRecord(int(row["id"]), row["key"], json.loads(row["settings"]), row["model"],
                     row["checkpoint_sha256"], row["engine"], row["state"], float(row["started_at"]),
                     None if row["finished_at"] is None else float(row["finished_at"]))


def proposal_from_row(row: Any) -> ProposalRecord:
    return ProposalRecord(int(row["id"]), int(row["run_id"]), int(row["image_id"]), row["label"], row["mode"],
                          float(row["score"]), json.loads(row["rle"]), json.loads(row["bbox"]), row["state"],
                          None if row["annotation_id"] is None else int(row["annotation_id"]))


# -- runs ---------------------------------------------------------------------------------------


def open_run(store: Store, key: str, settings: dict[str, Any], model: str, checkpoint_sha256: str | None,
             engine: str) -> tuple[RunRecord, bool]:
    """(the run with this key, created now?); an existing one is marked running again."""
    with store.transaction():
        row = store.one("SELECT * FROM runs WHERE key = ?", (key,))
        if row is None:
            store.execute("INSERT INTO runs (key, settings, model, checkpoint_sha256, engine, state, started_at) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (key, dumps(settings), model, checkpoint_sha256, engine, RUNNING, now()))
            created = True
        else:
            store.execute("UPDATE runs SET state = ?, engine = ?, finished_at = NULL WHERE id = ?",
                          (RUNNING, engine, row["id"]))
            created = False
        return _run(store.one("SELECT * FROM runs WHERE key = ?", (key,))), created


def get_run(store: Store, run_id: int) -> RunRecord:
    row = store.one("SELECT * FROM runs WHERE id = ?", (int(run_id),))
    if row is None:
        raise KeyError(f"run {run_id} does not exist")
    return _run(row)


def list_runs(store: Store) -> list[RunRecord]:
    return [_run(r) for r in store.query("SELECT * FROM runs ORDER BY id")]


def finish_run(store: Store, run_id: int) -> None:
    with store.transaction():
        store.execute("UPDATE runs SET state = ?, finished_at = ? WHERE id = ?", (FINISHED, now(), int(run_id)))


def image_states(store: Store, run_id: int) -> dict[int, str]:
    """image id -> "done" | "failed" for the images the run has merged."""
    rows = store.query("SELECT image_id, state FROM run_images WHERE run_id = ?", (int(run_id),))
    return {int(r["image_id"]): r["state"] for r in rows}


def image_errors(store: Store, run_id: int) -> dict[int, str]:
    rows = store.query("SELECT image_id, error FROM run_images WHERE run_id = ? AND state = ?",
                       (int(run_id), FAILED))
    return {int(r["image_id"]): r["error"] for r in rows}


def merge_image(store: Store, run_id: int, image_id: int, proposals: list[Any], error: str | None,
                seconds: float | None, suppress_iou: float) -> int:
    """Merge one image's outcome in one transaction; returns how many proposals were added.
    `proposals`: objects with label, score, mode, rle, bbox (best first). An image already done
    in this run is left as it is (0)."""
    with store.transaction():
        row = store.one("SELECT state FROM run_images WHERE run_id = ? AND image_id = ?", (run_id, image_id))
        if row is not None and row["state"] == DONE:
            return 0
        added = 0
        if error is None:
            accepted = [json.loads(r["rle"]) for r in
                        store.query("SELECT rle FROM annotations WHERE image_id = ?", (image_id,))]
            earlier: dict[str, list[dict]] = {}
            for r in store.query("SELECT label, rle FROM proposals WHERE image_id = ?", (image_id,)):
                earlier.setdefault(r["label"].casefold(), []).append(json.loads(r["rle"]))
            t = now()
            for p in proposals:
                same = earlier.setdefault(p.label.casefold(), [])
                if any(masks.iou(p.rle, other) >= suppress_iou for other in (*accepted, *same)):
                    continue
                store.execute(
                    "INSERT INTO proposals (run_id, image_id, label, mode, score, rle, bbox, state, created_at, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, image_id, p.label, p.mode, float(p.score), dumps(p.rle),
                     dumps([float(v) for v in p.bbox]), PENDING, t, t))
                same.append(p.rle)
                added += 1
        store.execute("INSERT OR REPLACE INTO run_images (run_id, image_id, state, error, seconds, proposals, "
                      "finished_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (run_id, image_id, FAILED if error else DONE, error, seconds, added, now()))
        return added


# -- proposals ----------------------------------------------------------------------------------


def get_proposal(store: Store, proposal_id: int) -> ProposalRecord | None:
    row = store.one("SELECT * FROM proposals WHERE id = ?", (int(proposal_id),))
    return None if row is None else proposal_from_row(row)


def list_proposals(store: Store, image_id: int | None = None, state: str | None = PENDING,
                   run_id: int | None = None) -> list[ProposalRecord]:
    """Proposals (pending by default; `state=None` for all), best score first within an image."""
    where, params = [], []
    for column, value in (("image_id", image_id), ("state", state), ("run_id", run_id)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    sql = "SELECT * FROM proposals" + (" WHERE " + " AND ".join(where) if where else "")
    return [proposal_from_row(r) for r in store.query(sql + " ORDER BY image_id, score DESC, id", params)]


def pending_count(store: Store) -> int:
    return int(store.one("SELECT COUNT(*) AS n FROM proposals WHERE state = ?", (PENDING,))["n"])


def pending_labels(store: Store) -> list[str]:
    """The labels pending proposals carry (no masks read: the review panel asks on every edit)."""
    rows = store.query("SELECT DISTINCT label FROM proposals WHERE state = ? ORDER BY label COLLATE NOCASE",
                       (PENDING,))
    return [r["label"] for r in rows]


def pending_image_ids(store: Store, min_score: float = 0.0) -> list[int]:
    """Images with a pending proposal scoring `min_score` or more, in id order (no masks read)."""
    rows = store.query("SELECT DISTINCT image_id FROM proposals WHERE state = ? AND score >= ? ORDER BY image_id",
                       (PENDING, float(min_score)))
    return [int(r["image_id"]) for r in rows]


def review_states(store: Store) -> dict[int, str]:
    """image id -> one of REVIEW_STATES."""
    rows = store.query(
        "SELECT i.id, CASE "
        "WHEN i.status = 'done' THEN 'done' "
        "WHEN EXISTS (SELECT 1 FROM proposals p WHERE p.image_id = i.id AND p.state = 'pending') THEN 'review' "
        "WHEN i.status IS NOT NULL AND i.status <> 'untouched' THEN i.status "
        "WHEN EXISTS (SELECT 1 FROM annotations a WHERE a.image_id = i.id) THEN 'in_progress' "
        "WHEN EXISTS (SELECT 1 FROM sessions s JOIN rounds r ON r.session_id = s.id "
        "             WHERE s.image_id = i.id AND s.state = 'open') THEN 'in_progress' "
        "ELSE 'untouched' END AS state FROM images i ORDER BY i.id")
    return {int(r["id"]): r["state"] for r in rows}


def add_pending_to(dataset: Any, store: Store) -> int:
    """Add the pending proposals to a snapshot `Dataset` as annotations marked as proposals
    (`source["proposal"]` True, provenance "run:<id>/<mode>", the model's score), above the
    image's annotations; a label no project label names is added to the dataset only. Returns
    how many were added."""
    from seem_annotator.core.labels import default_color
    from seem_annotator.core.records import AnnotationRecord, LabelRecord

    by_name = {label.name.casefold(): label.id for label in dataset.labels}
    next_label = max([label.id for label in dataset.labels] + [0]) + 1
    next_id = max([a.id for a in dataset.annotations] +
                  [int(store.one("SELECT COALESCE(MAX(id), 0) AS n FROM annotations")["n"])]) + 1
    top: dict[int, int] = {}
    for ann in dataset.annotations:
        top[ann.image_id] = max(top.get(ann.image_id, -1), ann.order)
    exported = {image.id for image in dataset.images}
    added = 0
    for p in list_proposals(store):
        if p.image_id not in exported:
            continue
        key = p.label.casefold()
        if key not in by_name:
            dataset.labels.append(LabelRecord(next_label, p.label, default_color(next_label - 1)))
            by_name[key], next_label = next_label, next_label + 1
        top[p.image_id] = top.get(p.image_id, -1) + 1
        dataset.annotations.append(AnnotationRecord(
            id=next_id, image_id=p.image_id, label_id=by_name[key], rle=p.rle, score=p.score,
            order=top[p.image_id], source={"proposal": True, "proposal_id": p.id, "run_id": p.run_id,
                                           "mode": p.mode},
            provenance=p.provenance))
        next_id += 1
        added += 1
    return added
