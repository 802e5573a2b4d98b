"""Project facade: sessions and rounds, accept/discard, annotation edits, undo/redo of each."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from seem_annotator.core import masks
from seem_annotator.core.annotations import AnnotationError
from seem_annotator.core.project import Project, default_store_path
from seem_annotator.core.prompts import BoxPrompt, PointPrompt, TextPrompt
from seem_annotator.core.rounds import SessionError
from seem_annotator.errors import StoreError, UserError

H, W = 48, 64


def rect(y0: int, y1: int, x0: int, x1: int) -> dict:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return masks.encode(m)


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((H, W, 3), 90, np.uint8)).save(root / name)
    with Project.create(root) as proj:
        yield proj


def first_image(project: Project) -> int:
    return project.images()[0].id


def test_create_open_and_default_store(tmp_path, project):
    assert project.root == (tmp_path / "imgs").resolve()
    assert project.store_path == default_store_path(project.root)
    assert [i.file_name for i in project.images()] == ["a.png", "b.png"]
    assert all((i.width, i.height) == (W, H) and i.status == "untouched" for i in project.images())
    with pytest.raises(StoreError, match="already exists"):
        Project.create(tmp_path / "imgs")
    with pytest.raises(StoreError, match="no seem-annotator project"):
        Project.open(tmp_path)


def test_external_store_and_reopen(tmp_path):
    root = tmp_path / "ro"
    root.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "x.png")
    store = tmp_path / "elsewhere" / "p.sqlite"
    with Project.create(root, store_path=store) as proj:
        label = proj.add_label("cat")
    assert not (root / ".seem-annotator").exists()
    with Project.open(store) as proj:
        assert proj.root == root.resolve()
        assert proj.labels()[0].id == label.id
        assert proj.image_path(proj.images()[0].id).is_file()


def test_rounds_accumulate_and_undo_redo(project):
    img = first_image(project)
    session = project.start_session(img)
    assert project.current_session(img).id == session.id
    r0 = project.add_round(session.id, (PointPrompt(10, 10),), "backend-a", rect(5, 15, 5, 15), [("dog", 0.7)])
    r1 = project.add_round(session.id, (BoxPrompt(0, 0, 30, 30), TextPrompt("dog")), "backend-a",
                           rect(0, 30, 0, 30), [("dog", 0.9), ("cat", 0.1)], score=0.8)
    assert (r0.index, r1.index) == (0, 1)
    cur = project.current_session(img)
    assert [r.id for r in cur.rounds] == [r0.id, r1.id]
    assert cur.all_prompts() == (PointPrompt(10, 10), BoxPrompt(0, 0, 30, 30), TextPrompt("dog"))
    assert cur.mask_rle == r1.mask_rle and cur.label_proposals == (("dog", 0.9), ("cat", 0.1))
    assert project.images()[0].status == "in_progress"

    assert project.undo(img) == "round"
    assert project.current_session(img).mask_rle == r0.mask_rle  # previous round current again
    assert project.can_redo(img)
    assert project.redo(img) == "round"
    assert [r.id for r in project.current_session(img).rounds] == [r0.id, r1.id]
    project.undo(img)
    project.undo(img)
    assert project.current_session(img) is None  # first round undone: the object is gone
    assert not project.can_undo(img)
    project.redo(img)
    again = project.current_session(img)
    assert again.id == session.id and [r.id for r in again.rounds] == [r0.id]


def test_new_action_clears_redo(project):
    img = first_image(project)
    s = project.start_session(img)
    project.add_round(s.id, (PointPrompt(1, 1),), "b", rect(0, 5, 0, 5), [])
    project.add_round(s.id, (PointPrompt(2, 2),), "b", rect(0, 6, 0, 6), [])
    project.undo(img)
    project.add_round(s.id, (PointPrompt(3, 3),), "b", rect(0, 7, 0, 7), [])
    assert not project.can_redo(img)
    assert [r.prompts[0].x for r in project.current_session(img).rounds] == [1.0, 3.0]


def test_accept_discard_and_their_undo(project):
    img = first_image(project)
    dog = project.add_label("dog")
    s = project.start_session(img)
    with pytest.raises(SessionError, match="no mask"):
        project.accept_session(s.id, dog.id)
    project.add_round(s.id, (PointPrompt(10, 10),), "b", rect(5, 15, 5, 15), [("dog", np.float32(0.9))],
                      score=np.float32(0.7))
    with pytest.raises(SessionError, match="in progress"):
        project.start_session(img)
    edited = rect(5, 20, 5, 20)
    ann = project.accept_session(np.int64(s.id), np.int32(dog.id), mask_rle=edited)
    assert ann.rle == edited and ann.label_id == dog.id and ann.score == pytest.approx(0.7)
    assert ann.source["prompts"] == [{"kind": "point", "x": 10.0, "y": 10.0, "positive": True}]
    assert ann.source["edited"] is True and ann.source["rounds"] == 1
    assert project.current_session(img) is None
    assert project.undo(img) == "accept"
    assert project.annotations(img) == []
    assert project.current_session(img).id == s.id
    assert project.redo(img) == "accept"
    assert [a.id for a in project.annotations(img)] == [ann.id]

    s2 = project.start_session(img)
    project.add_round(s2.id, (PointPrompt(40, 40),), "b", rect(30, 40, 30, 40), [])
    project.discard_session(s2.id)
    assert project.current_session(img) is None
    with pytest.raises(SessionError, match="discarded"):
        project.add_round(s2.id, (PointPrompt(1, 1),), "b", None, [])
    assert project.undo(img) == "discard"
    assert project.current_session(img).id == s2.id


def test_mask_size_checked(project):
    img = first_image(project)
    s = project.start_session(img)
    wrong = masks.encode(np.ones((10, 10), bool))
    with pytest.raises(AnnotationError, match="10x10"):
        project.add_round(s.id, (PointPrompt(1, 1),), "b", wrong, [])
    assert project.current_session(img).rounds == []


def accepted(project: Project, img: int, rle: dict, label_id: int) -> int:
    s = project.start_session(img)
    project.add_round(s.id, (PointPrompt(1, 1),), "b", rle, [])
    return project.accept_session(s.id, label_id).id


def test_edit_operations_and_undo(project):
    img = first_image(project)
    dog, cat = project.add_label("dog"), project.add_label("cat")
    a = accepted(project, img, rect(0, 30, 0, 30), dog.id)
    b = accepted(project, img, rect(10, 20, 10, 20), cat.id)
    c = accepted(project, img, rect(40, 45, 40, 45), cat.id)
    assert [x.id for x in project.annotations(img)] == [a, b, c]
    assert project.annotation(a).source["edited"] is False

    def state():
        return [(x.id, x.label_id, x.rle["counts"], x.order) for x in project.annotations(img)]

    checkpoints = []
    actions = [
        lambda: project.relabel(a, cat.id),
        lambda: project.set_mask(a, rect(0, 32, 0, 32)),
        lambda: project.subtract(a, b),
        lambda: project.reorder(c, 0),
        lambda: project.raise_(a),
        lambda: project.lower(a),
        lambda: project.merge([b, c]),
        lambda: project.split(project.annotations(img)[-1].id),
        lambda: project.delete(a),
    ]
    for act in actions:
        checkpoints.append(state())
        act()
    final = state()
    steps = len(project.history(img))
    project.relabel(project.annotations(img)[0].id, project.annotations(img)[0].label_id)  # no-op
    assert len(project.history(img)) == steps
    # The hole: b's pixels are gone from a.
    for i in range(len(actions)):
        project.undo(img)
        assert state() == checkpoints[-1 - i]
    for _ in actions:
        project.redo(img)
    assert state() == final
    assert project.history(img)[-len(actions):] == [
        ("relabel", False), ("edit_mask", False), ("subtract", False), ("reorder", False),
        ("reorder", False), ("reorder", False), ("merge", False), ("split", False), ("delete", False)]


def test_merge_subtract_split_geometry(project):
    img = first_image(project)
    lab = project.add_label("thing")
    outer = accepted(project, img, rect(0, 40, 0, 40), lab.id)
    inner = accepted(project, img, rect(10, 20, 10, 20), lab.id)
    holed = project.subtract(outer, inner)
    m = masks.decode(holed.rle)
    assert not m[15, 15] and m[5, 5] and masks.area(holed.rle) == 1600 - 100
    assert project.annotation(inner).rle == rect(10, 20, 10, 20)
    full = accepted(project, img, rect(0, 48, 0, 64), lab.id)
    with pytest.raises(AnnotationError, match="leave nothing"):
        project.subtract(inner, full)

    far = accepted(project, img, rect(42, 46, 50, 60), lab.id)
    merged = project.merge([inner, far])
    assert masks.area(merged.rle) == 100 + 40
    assert merged.source["merged_from"] == [inner, far]
    parts = project.split(merged.id)
    assert [masks.area(p.rle) for p in parts] == [100, 40] and parts[0].id == merged.id
    with pytest.raises(AnnotationError, match="one connected part"):
        project.split(parts[1].id)
    with pytest.raises(AnnotationError, match="at least two"):
        project.merge([outer])


def test_edits_of_other_images_are_separate(project):
    a_img, b_img = (i.id for i in project.images())
    lab = project.add_label("x")
    accepted(project, a_img, rect(0, 5, 0, 5), lab.id)
    accepted(project, b_img, rect(0, 5, 0, 5), lab.id)
    assert project.undo(a_img) == "accept"
    assert len(project.annotations(b_img)) == 1 and len(project.annotations(a_img)) == 0
    assert project.undo(b_img) == "accept"


def test_status_and_info(project):
    img = first_image(project)
    lab = project.add_label("x")
    accepted(project, img, rect(0, 5, 0, 5), lab.id)
    s = project.start_session(project.images()[1].id)
    project.add_round(s.id, (PointPrompt(1, 1),), "b", rect(0, 3, 0, 3), [])
    info = project.info()
    assert info["images"] == 2 and info["annotations"] == 1 and info["labels"] == {"x": 1}
    assert info["in_progress"] == 1 and info["unreadable"] == 0
    assert project.set_image_status(img, "done").status == "done"
    assert project.set_image_status(img, None).status == "in_progress"
    with pytest.raises(UserError):
        project.set_image_status(img, "finished")


def test_read_only_open_refuses_writes(project):
    lab = project.add_label("x")
    with Project.open(project.store_path, read_only=True) as ro:
        assert ro.labels()[0].id == lab.id
        with pytest.raises(StoreError, match="read-only"):
            ro.add_label("y")


def test_accept_hand_drawn_mask_on_empty_session_is_undoable(project):
    img = first_image(project)
    lab = project.add_label("x")
    s = project.start_session(img)
    assert project.start_session(img).id == s.id  # an empty open session is reused
    ann = project.accept_session(s.id, lab.id, mask_rle=rect(1, 9, 1, 9))
    assert ann.source["backend"] == "manual" and ann.source["prompts"] == []
    assert project.undo(img) == "accept"
    assert project.annotations(img) == [] and project.current_session(img) is None
    assert project.redo(img) == "accept"
    assert project.annotations(img)[0].id == ann.id


def test_empty_mask_refused(project):
    img = first_image(project)
    lab = project.add_label("x")
    a = accepted(project, img, rect(0, 5, 0, 5), lab.id)
    with pytest.raises(AnnotationError, match="empty"):
        project.set_mask(a, masks.encode(np.zeros((H, W), bool)))
    s = project.start_session(img)
    project.add_round(s.id, (PointPrompt(1, 1, False),), "b", masks.encode(np.zeros((H, W), bool)), [])
    with pytest.raises(SessionError, match="empty"):
        project.accept_session(s.id, lab.id)
    assert project.annotation(a).rle == rect(0, 5, 0, 5)


def test_interrupted_create_is_finished_on_open(tmp_path):
    from seem_annotator.core.store import Store

    root = tmp_path / "imgs"
    root.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "x.png")
    # A store with its root recorded but killed before the first scan committed.
    store = Store(default_store_path(root), create=True)
    store.set_meta("images_root", "..")
    store.close()
    with Project.open_or_create(root) as project:
        assert [i.file_name for i in project.images()] == ["x.png"]
    # Killed even earlier: schema written, nothing else.
    (root / ".seem-annotator" / "project.sqlite").unlink()
    Store(default_store_path(root), create=True).close()
    with Project.open_or_create(root) as project:
        assert project.root == root.resolve() and len(project.images()) == 1


def test_threads_share_one_project(project):
    import threading

    img = first_image(project)
    lab = project.add_label("x")
    errors = []

    def work(offset: int) -> None:
        try:
            for i in range(10):
                accepted_id = None
                with project._store.locked():  # one object at a time on this image
                    accepted_id = accepted(project, img, rect(i, i + 2, offset, offset + 2), lab.id)
                project.relabel(accepted_id, lab.id)
                project.info()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k * 10,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(project.annotations(img)) == 30
