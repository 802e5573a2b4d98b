"""Undoing the newest import: what it added goes, nothing else does, and history cannot bring it back."""

from __future__ import annotations

import numpy as np
import pytest
from test_core_transfer import H, W, make_root

from seem_annotator.cli.main import main
from seem_annotator.core import masks
from seem_annotator.core.project import Project
from seem_annotator.core.prompts import PointPrompt
from seem_annotator.core.records import AnnotationRecord, Dataset, ImageRecord, LabelRecord


def blob(y: int, x: int) -> dict:
    m = np.zeros((H, W), bool)
    m[y:y + 5, x:x + 6] = True
    return masks.encode(m)


def accept(proj: Project, image_id: int, label_id: int, pos: tuple[int, int]) -> int:
    s = proj.start_session(image_id)
    proj.add_round(s.id, (PointPrompt(pos[1], pos[0]),), "b", blob(*pos), [("dog", 0.5)], score=0.5)
    return proj.accept_session(s.id, label_id).id


def dataset() -> Dataset:
    """Three annotations on a.png and b.png, one on an image the folder lacks; labels dog and cat."""
    images = [ImageRecord(id=1, file_name="a.png", width=W, height=H),
              ImageRecord(id=2, file_name="b.png", width=W, height=H),
              ImageRecord(id=3, file_name="gone.png", width=W, height=H)]
    labels = [LabelRecord(id=1, name="dog", color=(200, 0, 0)), LabelRecord(id=2, name="cat", color=(0, 200, 0))]
    anns = [AnnotationRecord(id=10, image_id=1, label_id=1, rle=blob(1, 1)),
            AnnotationRecord(id=11, image_id=1, label_id=2, rle=blob(10, 10)),
            AnnotationRecord(id=12, image_id=2, label_id=2, rle=blob(3, 20)),
            AnnotationRecord(id=13, image_id=3, label_id=2, rle=blob(5, 5))]
    return Dataset(images=images, labels=labels, annotations=anns)


@pytest.fixture
def project(tmp_path):
    with Project.create(make_root(tmp_path / "p", names=("a.png", "b.png"))) as proj:
        yield proj


def test_undo_import_takes_back_only_what_the_import_added(project):
    a = project.image_by_name("a.png")
    dog = project.add_label("dog")
    before = accept(project, a.id, dog.id, (15, 2))  # work that was there before the import
    project.import_dataset(dataset(), source="instances.json")
    record = project.last_import()
    assert record is not None and record.source == "instances.json" and record.annotations == 4
    assert len(record.labels) == 1  # cat is new; dog matched the project's own
    after = accept(project, a.id, dog.id, (18, 20))  # work done after it
    cat = project.label_by_name("cat")
    imported_cat = next(x for x in project.annotations(a.id) if x.label_id == cat.id)
    project.relabel(imported_cat.id, dog.id)  # an edit of an imported annotation
    b = project.image_by_name("b.png")
    project.delete(project.annotations(b.id)[0].id)  # an imported annotation deleted since
    assert project.import_still_present(record) == (3, 1)

    summary = project.undo_last_import()

    assert summary == dict(annotations_removed=3, edited=1, labels_removed=1, images_removed=1,
                           history_entries_removed=2)
    assert [x.id for x in project.annotations()] == [before, after]
    assert project.label_by_name("cat") is None and project.label_by_name("dog") is not None
    assert project.image_by_name("gone.png") is None and project.image_by_name("b.png") is not None
    # The history can no longer bring an imported annotation back; the session's accept is still undoable.
    assert project.undo(b.id) is None
    assert project.undo(a.id) is not None
    assert [x.id for x in project.annotations()] == [before]
    assert project.last_import() is None and project.undo_last_import() is None
    assert cat.id not in project.label_counts()


def test_the_import_record_survives_a_reopen_and_the_newest_import_replaces_it(project, tmp_path):
    project.import_dataset(dataset(), source="first.json")
    second = Dataset(images=[ImageRecord(id=1, file_name="b.png", width=W, height=H)],
                     labels=[LabelRecord(id=5, name="cow", color=(1, 2, 3))],
                     annotations=[AnnotationRecord(id=1, image_id=1, label_id=5, rle=blob(0, 0))])
    project.import_dataset(second, source="second.json")
    root, store = project.root, project.store_path
    project.close()
    with Project.open(root) as again:
        assert store == again.store_path
        record = again.last_import()
        assert record.source == "second.json" and record.annotations == 1
        assert again.undo_last_import()["annotations_removed"] == 1
        assert again.label_by_name("cow") is None
        assert len(again.annotations()) == 4  # the first import's stay: only the newest is undone
        assert again.last_import() is None


def test_an_import_that_adds_nothing_leaves_nothing_to_undo(project):
    project.import_dataset(dataset(), source="first.json")
    project.import_dataset(Dataset(images=[ImageRecord(id=1, file_name="a.png", width=W, height=H)]),
                           source="empty.json")
    assert project.last_import() is None  # not the first import's record under the second's name


def test_cli_undo_import(tmp_path, capsys):
    root = make_root(tmp_path / "q", names=("a.png", "b.png"))
    with Project.create(root) as proj:
        proj.import_dataset(dataset(), source="instances.json")
    assert main(["undo-import", "--project", str(root)]) == 0
    out = capsys.readouterr().out
    assert "Undid the import of instances.json: removed 4 annotations, 2 labels and 1 unreadable image." in out
    assert main(["undo-import", "--project", str(root)]) == 1
    assert "no import to undo" in capsys.readouterr().out
    with Project.open(root) as proj:
        assert proj.annotations() == []
