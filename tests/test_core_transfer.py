"""snapshot() and import_dataset(): matching by file name and label name, ids, all-or-nothing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from seem_annotator.core import masks
from seem_annotator.core.project import Project
from seem_annotator.core.prompts import PointPrompt
from seem_annotator.core.records import AnnotationRecord, ImageRecord, LabelRecord
from seem_annotator.errors import FormatError

H, W = 24, 32


def blob(y: int, x: int) -> dict:
    m = np.zeros((H, W), bool)
    m[y:y + 5, x:x + 6] = True
    m[y + 2, x + 2] = False  # a hole survives as RLE
    return masks.encode(m)


def make_root(path, names=("a.png", "b.jpg")):
    path.mkdir()
    for name in names:
        Image.fromarray(np.full((H, W, 3), 120, np.uint8)).save(path / name)
    return path


@pytest.fixture
def source(tmp_path):
    with Project.create(make_root(tmp_path / "src")) as proj:
        a, b = proj.images()
        dog = proj.add_label("dog", color="#ff0000", shortcut=1)
        cat = proj.add_label("cat")
        for img, label, pos in ((a, dog, (1, 1)), (a, cat, (10, 10)), (b, dog, (3, 20))):
            s = proj.start_session(img.id)
            proj.add_round(s.id, (PointPrompt(pos[1], pos[0]),), "b", blob(*pos), [("dog", 0.5)], score=0.75)
            proj.accept_session(s.id, label.id)
        yield proj


def test_snapshot_is_self_contained(source):
    ds = source.snapshot()
    assert ds.root == str(source.root)
    assert [i.file_name for i in ds.images] == ["a.png", "b.jpg"]
    assert [(lab.name, lab.color, lab.shortcut) for lab in ds.labels][0] == ("dog", (255, 0, 0), 1)
    assert len(ds.annotations) == 3 and all(a.score == 0.75 for a in ds.annotations)
    assert [a.order for a in ds.annotations_of(ds.images[0].id)] == [0, 1]


def test_import_into_new_project_round_trips(source, tmp_path):
    ds = source.snapshot()
    with Project.create(make_root(tmp_path / "dst")) as dst:
        summary = dst.import_dataset(ds)
        assert summary == dict(images_added=0, images_matched=2, labels_added=2, labels_matched=0,
                               annotations_added=3)
        # Fresh project: label ids (COCO category ids) are kept.
        assert [(lab.id, lab.name) for lab in dst.labels()] == [(lab.id, lab.name) for lab in ds.labels]
        got = dst.snapshot()
        by_name = {i.id: i.file_name for i in got.images}
        src_name = {i.id: i.file_name for i in ds.images}
        key = lambda anns, names: sorted((names[a.image_id], a.label_id, a.rle["counts"], a.order)  # noqa: E731
                                         for a in anns)
        assert key(got.annotations, by_name) == key(ds.annotations, src_name)
        # Importing again matches everything by name and adds the annotations on top.
        again = dst.import_dataset(ds)
        assert again["labels_matched"] == 2 and again["annotations_added"] == 3
        assert len(dst.annotations()) == 6
        assert max(a.order for a in dst.annotations(dst.images()[0].id)) == 3


def test_import_adds_new_images_and_matches_labels_case_insensitively(source, tmp_path):
    root = make_root(tmp_path / "dst2", names=("a.png",))
    ds = source.snapshot()
    with Project.create(root) as dst:
        (root / "b.jpg").write_bytes((source.root / "b.jpg").read_bytes())  # appears after the scan
        dst.add_label("DOG")
        dst.add_label("zebra")
        (root / "new").mkdir()
        ds.images.append(ImageRecord(id=99, file_name="new/missing.png", width=W, height=H))
        summary = dst.import_dataset(ds)
        assert summary["images_added"] == 2 and summary["images_matched"] == 1
        assert summary["labels_matched"] == 1 and summary["labels_added"] == 1
        b = dst.image_by_name("b.jpg")
        assert b.readable and b.sha256 == source.image_by_name("b.jpg").sha256 and (b.width, b.height) == (W, H)
        missing = dst.image_by_name("new/missing.png")
        assert not missing.readable and "missing" in missing.error
        dog = dst.label_by_name("dog")
        assert dog.name == "DOG" and dst.label_counts()[dog.id] == 2


@pytest.mark.parametrize("problem", ["unknown_image", "unknown_label", "bad_rle", "wrong_size", "outside_root",
                                     "duplicate_image"])
def test_import_is_all_or_nothing(source, tmp_path, problem):
    ds = source.snapshot()
    ds.labels.append(LabelRecord(id=77, name="newlabel", color=(1, 2, 3)))
    ds.images.append(ImageRecord(id=55, file_name="extra.png", width=W, height=H))
    bad = AnnotationRecord(id=1000, image_id=ds.images[0].id, label_id=ds.labels[0].id, rle=blob(0, 0))
    if problem == "unknown_image":
        bad.image_id = 4242
    elif problem == "unknown_label":
        bad.label_id = 4242
    elif problem == "bad_rle":
        bad.rle = {"size": [H, W]}
    elif problem == "wrong_size":
        bad.rle = masks.encode(np.ones((5, 5), bool))
    elif problem == "outside_root":
        ds.images.append(ImageRecord(id=56, file_name="../escape.png", width=W, height=H))
    elif problem == "duplicate_image":
        ds.images.append(ImageRecord(id=55, file_name="extra2.png", width=W, height=H))
    ds.annotations.append(bad)
    with Project.create(make_root(tmp_path / "dst3")) as dst:
        dst.add_label("keep")
        before = (dst.snapshot(), dst.info())
        with pytest.raises(FormatError):
            dst.import_dataset(ds)
        after = (dst.snapshot(), dst.info())
        assert after == before
        assert dst.image_by_name("extra.png") is None and dst.label_by_name("newlabel") is None


def test_an_imported_label_never_takes_the_colour_of_another(source, tmp_path):
    # Found in the app: a COCO file's "space shuttle" came in with the colour of the project's "cat".
    root = make_root(tmp_path / "dst3", names=("a.png",))
    ds = source.snapshot()
    with Project.create(root) as dst:
        dst.add_label("bird", color="#ff0000")  # the source's "dog" colour
        dst.import_dataset(ds)
        colours = [tuple(label.color) for label in dst.labels()]
        assert len(colours) == 3 and len(set(colours)) == 3
        assert tuple(dst.label_by_name("cat").color) == tuple(source.label_by_name("cat").color)  # kept when free
