"""Label set: validation, colours, shortcuts, rename, merge, delete, and their interplay with undo."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from seem_annotator.core import labels as L
from seem_annotator.core import masks
from seem_annotator.core.project import Project
from seem_annotator.core.prompts import PointPrompt


@pytest.fixture
def project(tmp_path):
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "a.png")
    with Project.create(tmp_path) as proj:
        yield proj


def square(i: int) -> dict:
    m = np.zeros((20, 20), bool)
    m[i:i + 3, i:i + 3] = True
    return masks.encode(m)


def accept(project: Project, label_id: int, i: int) -> int:
    img = project.images()[0].id
    s = project.start_session(img)
    project.add_round(s.id, (PointPrompt(i, i),), "b", square(i), [])
    return project.accept_session(s.id, label_id).id


def test_validation_helpers():
    assert L.normalize_name("  big \t dog ") == "big dog"
    for bad in ("", "   ", "a\x00b", "x" * 500):
        with pytest.raises(L.LabelError):
            L.normalize_name(bad)
    assert L.parse_color("#ff8000") == (255, 128, 0) == L.parse_color("ff8000")
    assert L.parse_color("#f80") == (255, 136, 0) and L.parse_color([1, 2, 3]) == (1, 2, 3)
    assert L.color_hex((255, 128, 0)) == "#ff8000"
    for bad in ("#12", "red", [1, 2], [0, 0, 300]):
        with pytest.raises(L.LabelError):
            L.parse_color(bad)
    assert L.validate_shortcut(None) is None and L.validate_shortcut("3") == 3
    with pytest.raises(L.LabelError):
        L.validate_shortcut(12)
    colors = [L.default_color(i) for i in range(12)]
    assert len(set(colors)) == 12 and all(0 <= c <= 255 for rgb in colors for c in rgb)


def test_add_find_rename_color_shortcut(project):
    dog = project.add_label("Dog", shortcut=1)
    cat = project.add_label("cat", color="#00ff00")
    assert cat.color == (0, 255, 0) and dog.shortcut == 1
    assert project.label_by_name("  DOG ").id == dog.id and project.label_by_name("cow") is None
    with pytest.raises(L.LabelError, match="already exists"):
        project.add_label("dog")
    with pytest.raises(L.LabelError, match="already exists"):
        project.rename_label(cat.id, "DOG")
    assert project.rename_label(dog.id, "dog").name == "dog"  # a case-only change of itself is fine
    assert project.set_label_color(dog.id, (1, 2, 3)).color == (1, 2, 3)
    # A digit belongs to one label: giving it to cat takes it from dog.
    assert project.set_label_shortcut(cat.id, 1).shortcut == 1
    assert project.label(dog.id).shortcut is None
    assert [lab.name for lab in project.labels()] == ["dog", "cat"]
    assert project.ensure_label("CAT").id == cat.id
    assert project.ensure_label("bird").name == "bird" and len(project.labels()) == 3


def test_merge_labels_moves_annotations_and_history(project):
    img = project.images()[0].id
    dog, hound = project.add_label("dog"), project.add_label("hound")
    a = accept(project, dog.id, 1)
    b = accept(project, hound.id, 5)
    project.relabel(a, hound.id)
    project.merge_labels(hound.id, dog.id)
    assert {x.label_id for x in project.annotations(img)} == {dog.id}
    assert project.label_by_name("hound") is None
    assert project.label_counts() == {dog.id: 2}
    # Undo of the relabel and accepts must not resurrect "hound".
    project.undo(img)
    assert project.annotation(a).label_id == dog.id
    project.undo(img)
    assert [x.id for x in project.annotations(img)] == [a]
    project.redo(img)
    assert project.annotation(b).label_id == dog.id
    assert [lab.name for lab in project.labels()] == ["dog"]


def test_delete_label_refused_when_used_or_reassigned(project):
    img = project.images()[0].id
    dog, cat, cow = project.add_label("dog"), project.add_label("cat"), project.add_label("cow")
    a = accept(project, dog.id, 1)
    with pytest.raises(L.LabelError, match="used by 1 annotation"):
        project.delete_label(dog.id)
    project.delete_label(dog.id, reassign_to=cat.id)
    assert project.annotation(a).label_id == cat.id
    project.delete_label(cow.id)
    assert [lab.name for lab in project.labels()] == ["cat"]
    # Re-adding a deleted name brings the same id back.
    assert project.add_label("cow").id == cow.id

    # Deleting a label whose last annotation was deleted, then undoing that delete, revives it.
    mouse = project.add_label("mouse")
    m = accept(project, mouse.id, 8)
    project.delete(m)
    project.delete_label(mouse.id)
    assert project.label_by_name("mouse") is None
    project.undo(img)
    assert project.annotation(m).label_id == mouse.id
    assert project.label_by_name("mouse").id == mouse.id


def test_label_ids_are_stable_across_reopen(project, tmp_path):
    ids = [project.add_label(n).id for n in ("a", "b", "c")]
    project.delete_label(ids[1])
    new = project.add_label("d")
    assert new.id not in ids
    path = project.store_path
    project.close()
    with Project.open(path) as again:
        assert [(lab.id, lab.name) for lab in again.labels()] == [(ids[0], "a"), (ids[2], "c"), (new.id, "d")]
