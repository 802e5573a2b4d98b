"""Runs and proposals in the store: the migration from a v2 project file (data kept, read-only
opens of old files), merging an image's proposals in one transaction with suppression, and
derived review states."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from seem_annotator.core import masks, runs, schema
from seem_annotator.core.project import Project
from seem_annotator.core.store import dumps
from tests.conftest import copy_samples


def box_rle(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> dict:
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return masks.encode(m)


@dataclass
class P:
    label: str
    score: float
    mode: str
    rle: dict
    bbox: list[float]


def make_v2_project(folder: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """A project written by the schema-2 code (the migrations of that release only), with an
    interactive annotation, an imported one and a history entry. Returns (image id, size)."""
    with monkeypatch.context() as m:
        m.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:2])
        m.setattr(schema, "SCHEMA_VERSION", 2)
        m.setattr(schema, "AUTO_ANNOTATION_VERSION", 0)
        project = Project.create(folder)
        image = project.images()[0]
        store = project.store
        rle = box_rle(image.height, image.width, 10, 50, 10, 50)
        with store.transaction():
            store.execute("INSERT INTO labels (name, color) VALUES ('cat', '[1,2,3]')")
            for source in ({"session_id": 1, "backend": "seem"}, {"imported": "coco", "file": "a.json"}):
                cur = store.execute(
                    "INSERT INTO annotations (image_id, label_id, rle, score, source, created_at, updated_at) "
                    "VALUES (?, 1, ?, 0.5, ?, 1.0, 1.0)", (image.id, dumps(rle), dumps(source)))
            row = dict(store.one("SELECT id, image_id, label_id, rle, score, iscrowd, z, source, extra, created_at, "
                                 "updated_at FROM annotations WHERE id = ?", (cur.lastrowid,)))
            store.execute("INSERT INTO history (image_id, action, changes, created_at) VALUES (?, 'accept', ?, 1.0)",
                          (image.id, dumps([{"table": "annotations", "id": row["id"], "before": None,
                                             "after": row}])))
        assert store.one("PRAGMA user_version")[0] == 2
        project.close()
    return image.id, (image.height, image.width)


def test_v2_project_opens_migrated_with_its_data(tmp_path, monkeypatch):
    folder = copy_samples(tmp_path / "photos")
    image_id, _ = make_v2_project(folder, monkeypatch)
    with Project.open(folder, read_only=True) as old:
        # Read-only cannot upgrade: the new tables read as empty, annotations as before.
        assert old.store.version == 2
        assert old.info()["proposals"] == 0 and old.info()["annotations"] == 2
        assert [a.provenance for a in old.annotations()] == [None, None]
        assert old.review_states()[image_id] == "in_progress"
    with Project.open(folder) as project:
        assert project.store.one("PRAGMA user_version")[0] == schema.SCHEMA_VERSION
        anns = project.annotations(image_id)
        assert [a.provenance for a in anns] == ["interactive", "imported:coco"]
        assert project.info()["labels"] == {"cat": 2}
        # History written before the provenance columns existed still undoes and redoes.
        assert project.undo(image_id) == "accept"
        assert len(project.annotations(image_id)) == 1
        assert project.redo(image_id) == "accept"
        assert project.annotations(image_id)[1].provenance is None
    assert (folder / ".seem-annotator" / "project.sqlite.schema2.bak").is_file()


def test_merge_image_suppresses_and_is_idempotent(tmp_path):
    folder = copy_samples(tmp_path / "photos")
    with Project.create(folder) as project:
        image = project.images()[0]
        h, w = image.height, image.width
        store = project.store
        cat = project.add_label("cat")
        with store.transaction():
            from seem_annotator.core import annotations as ann_ops
            from seem_annotator.core.history import Recorder

            rec = Recorder(store, image.id)
            ann_ops.insert(rec, image.id, cat.id, box_rle(h, w, 0, 100, 0, 100))
            rec.commit("accept")
        run, created = runs.open_run(store, "k1", {"modes": ["everything"]}, "m", "abc", "local")
        assert created and run.state == runs.RUNNING
        again, created = runs.open_run(store, "k1", {}, "m", "abc", "ray")
        assert not created and again.id == run.id and again.engine == "ray"
        props = [
            P("dog", 0.9, "everything", box_rle(h, w, 0, 100, 0, 98), [0, 0, 98, 100]),  # over the accepted cat
            P("dog", 0.8, "everything", box_rle(h, w, 200, 260, 200, 260), [200, 200, 60, 60]),
            P("dog", 0.7, "text", box_rle(h, w, 200, 260, 200, 258), [200, 200, 58, 60]),  # same dog again
            P("cat", 0.6, "text", box_rle(h, w, 200, 260, 200, 258), [200, 200, 58, 60]),  # another label
        ]
        assert runs.merge_image(store, run.id, image.id, props, None, 0.5, 0.7) == 2
        assert runs.merge_image(store, run.id, image.id, props, None, 0.5, 0.7) == 0  # done: left as is
        pending = project.proposals(image.id)
        assert [(p.label, p.mode, p.score) for p in pending] == [("dog", "everything", 0.8), ("cat", "text", 0.6)]
        assert pending[0].provenance == f"run:{run.id}/everything"
        assert project.info()["proposals"] == 2
        assert project.review_states()[image.id] == "review"
        assert project.review_states()[project.images()[1].id] == "untouched"
        # A second run proposing the same objects adds nothing (earlier proposals of the label).
        run2, _ = runs.open_run(store, "k2", {}, "m", "abc", "local")
        assert runs.merge_image(store, run2.id, image.id, props[1:2], None, 0.1, 0.7) == 0
        other = project.images()[1]
        assert runs.merge_image(store, run.id, other.id, [], "x.jpg could not be read", None, 0.7) == 0
        assert runs.image_states(store, run.id) == {image.id: "done", other.id: "failed"}
        assert runs.image_errors(store, run.id) == {other.id: "x.jpg could not be read"}
        runs.finish_run(store, run.id)
        assert runs.get_run(store, run.id).state == runs.FINISHED
        row = store.one("SELECT seconds, proposals FROM run_images WHERE run_id = ? AND image_id = ?",
                        (run.id, image.id))
        assert (row["seconds"], row["proposals"]) == (0.5, 2)
        assert json.loads(store.one("SELECT bbox FROM proposals LIMIT 1")["bbox"]) == [200, 200, 60, 60]
