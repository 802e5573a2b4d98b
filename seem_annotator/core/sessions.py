"""Object sessions in the store: start, add rounds, discard, accept (each undoable but start).

Starting a session is not itself a history entry (it changes nothing a person sees); the first
round's entry records the session row too, so undoing the first round removes the session
entirely and redo brings it back under the same id. At most one open session per image holds
rounds; an empty open session is reused by `start`.
"""

from __future__ import annotations

import json

from seem_annotator.core import annotations as ann_ops
from seem_annotator.core import masks
from seem_annotator.core.history import Recorder, read_row
from seem_annotator.core.prompts import Prompt
from seem_annotator.core.records import AnnotationRecord
from seem_annotator.core.rounds import (
    ACCEPTED,
    DISCARDED,
    OPEN,
    ObjectSession,
    Round,
    SessionError,
    clean_proposals,
    prompts_to_json,
    round_from_row,
)
from seem_annotator.core.store import Store, dumps, now


def _image_exists(store: Store, image_id: int) -> None:
    if store.one("SELECT 1 FROM images WHERE id = ?", (int(image_id),)) is None:
        raise SessionError(f"Image {image_id} does not exist.")


def load(store: Store, session_id: int) -> ObjectSession:
    row = store.one("SELECT * FROM sessions WHERE id = ?", (int(session_id),))
    if row is None:
        raise SessionError(f"Object session {session_id} does not exist (it may have been undone).")
    rounds = [round_from_row(r) for r in
              store.query("SELECT * FROM rounds WHERE session_id = ? ORDER BY idx", (row["id"],))]
    return ObjectSession(id=int(row["id"]), image_id=int(row["image_id"]), state=str(row["state"]),
                         rounds=rounds, annotation_id=row["annotation_id"],
                         created_at=float(row["created_at"]), updated_at=float(row["updated_at"]))


def current(store: Store, image_id: int) -> ObjectSession | None:
    """The image's open session: the one with rounds if any, else the newest empty one."""
    rows = store.query(
        "SELECT s.id, (SELECT COUNT(*) FROM rounds r WHERE r.session_id = s.id) AS n FROM sessions s "
        "WHERE s.image_id = ? AND s.state = ? ORDER BY n > 0 DESC, s.id DESC LIMIT 1", (int(image_id), OPEN))
    return load(store, rows[0]["id"]) if rows else None


def start(store: Store, image_id: int) -> ObjectSession:
    with store.transaction():
        _image_exists(store, image_id)
        existing = current(store, image_id)
        if existing is not None:
            if existing.rounds:
                raise SessionError(f"Image {image_id} already has an object in progress "
                                   f"(session {existing.id}); accept or discard it first.")
            return existing
        t = now()
        cur = store.execute("INSERT INTO sessions (image_id, state, annotation_id, created_at, updated_at) "
                            "VALUES (?, ?, NULL, ?, ?)", (int(image_id), OPEN, t, t))
        return load(store, int(cur.lastrowid))


def _open_session(store: Store, session_id: int) -> ObjectSession:
    session = load(store, session_id)
    if session.state != OPEN:
        raise SessionError(f"Object session {session_id} is already {session.state}.")
    return session


def add_round(store: Store, session_id: int, prompts: tuple[Prompt, ...], backend: str,
              mask_rle: dict | None, label_proposals: list[tuple[str, float]],
              score: float | None = None) -> Round:
    prompt_json = prompts_to_json(tuple(prompts))
    proposals = clean_proposals(label_proposals)
    with store.transaction():
        session = _open_session(store, session_id)
        clean = None if mask_rle is None else ann_ops.check_rle(store, session.image_id, mask_rle)
        rec = Recorder(store, session.image_id)
        t = now()
        if not session.rounds:
            # Record the (empty) session row so undoing the first round removes the session.
            store.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (t, session.id))
            rec.changes.append({"table": "sessions", "id": session.id, "before": None,
                                "after": read_row(store, "sessions", session.id)})
        else:
            rec.update("sessions", session.id, updated_at=t)
        round_id = rec.insert("rounds", {
            "session_id": session.id, "idx": len(session.rounds), "prompts": dumps(prompt_json),
            "backend": str(backend), "mask_rle": None if clean is None else dumps(clean),
            "label_proposals": dumps(proposals), "score": None if score is None else float(score),
            "created_at": t})
        rec.commit("round")
        return round_from_row(store.one("SELECT * FROM rounds WHERE id = ?", (round_id,)))


def discard(store: Store, session_id: int) -> None:
    """Drop an open session (undoable when it had rounds; an empty one just vanishes)."""
    with store.transaction():
        session = _open_session(store, session_id)
        if not session.rounds:
            store.execute("DELETE FROM sessions WHERE id = ?", (session.id,))
            return
        rec = Recorder(store, session.image_id)
        rec.update("sessions", session.id, state=DISCARDED, updated_at=now())
        rec.commit("discard")


def accept(store: Store, session_id: int, label_id: int, mask_rle: dict | None = None,
           score: float | None = None) -> AnnotationRecord:
    """Turn the session into an annotation with `label_id`; `mask_rle` (an edited mask) overrides the
    last round's, `score` overrides its score."""
    with store.transaction():
        session = _open_session(store, session_id)
        label = store.one("SELECT deleted FROM labels WHERE id = ?", (int(label_id),))
        if label is None or label["deleted"]:
            raise SessionError(f"Label {label_id} does not exist.")
        if mask_rle is None:
            if session.mask_rle is None:
                raise SessionError("The object has no mask yet; add a prompt or draw one before accepting.")
            mask_rle = session.mask_rle
        clean = ann_ops.check_rle(store, session.image_id, mask_rle)
        if masks.area(clean) == 0:
            raise SessionError("The object's mask is empty; nothing to accept.")
        last = session.last_round
        if score is None and last is not None:
            score = last.score
        source = {
            "session_id": session.id,
            "rounds": len(session.rounds),
            "backend": last.backend if last else "manual",
            "prompts": json.loads(dumps(prompts_to_json(session.all_prompts()))),
            "edited": session.mask_rle is None or clean != masks.normalize(session.mask_rle),
        }
        rec = Recorder(store, session.image_id)
        if not session.rounds:
            # Accepting a hand-drawn mask on an empty session: record the session row's creation.
            row = read_row(store, "sessions", session.id)
            rec.changes.append({"table": "sessions", "id": session.id, "before": None, "after": row})
        ann_id = ann_ops.insert(rec, session.image_id, int(label_id), clean, score=score,
                                source=source, created_at=session.created_at)
        rec.update("sessions", session.id, state=ACCEPTED, annotation_id=ann_id, updated_at=now())
        rec.commit("accept")
        return ann_ops.get(store, ann_id)
