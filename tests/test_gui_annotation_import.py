"""File > Import annotations… and the offer to import a labelme folder's shapes, in the real window
(found under Xvfb: a labelme team opening its folder saw none of its labels, and importing them
needed the command line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import copy_samples
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from test_gui_workflow import key_column, make_window, open_image

from seem_annotator.gui.annotation_import import import_annotations_to

pytestmark = pytest.mark.timeout(120)

CAT = [[120.0, 40.0], [330.0, 40.0], [330.0, 290.0], [120.0, 290.0]]


def _labelme_folder(tmp_path: Path) -> Path:
    folder = copy_samples(tmp_path / "samples")
    doc = {"version": "5.4.1", "flags": {}, "imagePath": "chelsea.jpg", "imageData": None,
           "imageHeight": 300, "imageWidth": 451,
           "shapes": [{"label": "cat", "points": CAT, "group_id": None, "shape_type": "polygon", "flags": {}}]}
    (folder / "chelsea.json").write_text(json.dumps(doc))
    return folder


def _settled(qtbot, offer) -> None:
    """The offer's folder walk (on a background thread) has reported."""
    job = getattr(offer, "_job", None)
    if job is not None:
        qtbot.waitUntil(lambda: job.thread is not None and not job.thread.is_alive(), timeout=30000)
    qtbot.wait(50)  # its report is queued to the GUI thread


def test_a_labelme_folder_offers_its_shapes_once(qtbot, tmp_path: Path) -> None:
    folder = _labelme_folder(tmp_path)
    window = make_window(qtbot, tmp_path)
    window.open_folder(folder)
    open_image(window, "chelsea.jpg")
    offer = window.labelme_offer
    qtbot.waitUntil(offer.isVisible, timeout=30000)  # the folder is walked off the GUI thread
    assert "1 LabelMe file" in offer.label.text()
    QTest.mouseClick(offer.import_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(window.controller.annotations) == 1, timeout=30000)
    assert not offer.isVisible()
    (ann,) = window.controller.annotations
    assert window.project.label(ann.label_id).name == "cat"
    assert "Imported 1 annotation on 1 image (1 new label, 0 new images)" in window.status.full_text()
    assert set(key_column(window.labels_panel)) == {"cat"}
    # The project has annotations now: no offer when it opens again.
    window.close_project()
    window.open_folder(folder)
    _settled(qtbot, window.labelme_offer)
    assert not window.labelme_offer.isVisible()
    window.close()


def test_declining_the_offer_is_remembered(qtbot, tmp_path: Path) -> None:
    folder = _labelme_folder(tmp_path)
    window = make_window(qtbot, tmp_path)
    window.open_folder(folder)
    qtbot.waitUntil(window.labelme_offer.isVisible, timeout=30000)
    QTest.mouseClick(window.labelme_offer.dismiss_button, Qt.MouseButton.LeftButton)
    assert not window.labelme_offer.isVisible()
    window.close_project()
    window.open_folder(folder)
    _settled(qtbot, window.labelme_offer)
    assert not window.labelme_offer.isVisible() and window.project.annotations() == []
    window.close()


def _one_cup(window) -> dict:
    """A COCO document with one cup on coffee.jpg, sized as the open project has it."""
    coffee = window.project.image_by_name("coffee.jpg")
    return {"images": [{"id": 7, "file_name": "coffee.jpg", "width": coffee.width, "height": coffee.height}],
            "categories": [{"id": 1, "name": "cup"}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "iscrowd": 0,
                             "segmentation": [[200, 100, 400, 100, 400, 300, 200, 300]]}]}


def test_importing_coco_from_the_window_all_or_nothing(qtbot, tmp_path: Path) -> None:
    window = make_window(qtbot, tmp_path)
    window.open_folder(copy_samples(tmp_path / "samples"))
    _settled(qtbot, window.labelme_offer)
    assert not window.labelme_offer.isVisible()  # no LabelMe files here
    open_image(window, "coffee.jpg")
    good = _one_cup(window)
    bad = json.loads(json.dumps(good))
    bad["annotations"].append({"id": 2, "image_id": 99, "category_id": 1, "iscrowd": 0,
                               "segmentation": [[1, 1, 5, 1, 5, 5]]})
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    (tmp_path / "good.json").write_text(json.dumps(good))
    outcome: list = []
    import_annotations_to(window, "coco", tmp_path / "bad.json", on_done=lambda s, e: outcome.append((s, e)))
    qtbot.waitUntil(lambda: bool(outcome), timeout=30000)
    assert outcome[0][0] is None and "refers to image 99" in outcome[0][1]
    assert window.project.annotations() == [] and "Nothing was imported" in window.status.full_text()
    outcome.clear()
    import_annotations_to(window, "coco", tmp_path / "good.json", on_done=lambda s, e: outcome.append((s, e)))
    qtbot.waitUntil(lambda: bool(outcome), timeout=30000)
    assert outcome[0][1] is None and outcome[0][0]["annotations_added"] == 1
    assert len(window.controller.annotations) == 1  # shown on the open image at once
    window.close()


def test_the_offer_of_a_folder_closed_before_its_walk_reports_is_not_shown(qtbot, tmp_path: Path, monkeypatch) -> None:
    from threading import Event

    from seem_annotator.gui import annotation_import

    folder = _labelme_folder(tmp_path)
    other = copy_samples(tmp_path / "other")
    release = Event()

    def slow_walk(root: Path) -> list[Path]:
        release.wait(30)  # a huge folder: the walk is still going when the person opens another
        return [root / "chelsea.json"] if Path(root).resolve() == folder.resolve() else []

    monkeypatch.setattr(annotation_import, "label_files", slow_walk)
    window = make_window(qtbot, tmp_path)
    window.open_folder(folder)
    offer = window.labelme_offer
    walking = offer._job
    assert not offer.isVisible()  # the window did not wait for the walk
    window.close_project()
    window.open_folder(other)
    release.set()
    qtbot.waitUntil(lambda: not walking.thread.is_alive(), timeout=30000)
    _settled(qtbot, offer)
    # The first folder's count came back while another project was open: not offered there.
    assert not offer.isVisible() and offer.files == 0
    window.close()


def test_the_last_import_is_undone_from_the_file_menu(qtbot, tmp_path: Path, monkeypatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    window = make_window(qtbot, tmp_path)
    window.open_folder(copy_samples(tmp_path / "samples"))
    _settled(qtbot, window.labelme_offer)
    open_image(window, "coffee.jpg")
    (tmp_path / "cups.json").write_text(json.dumps(_one_cup(window)))
    action = window.shortcuts.actions["undo_import"]
    file_menu = next(m.menu() for m in window.menuBar().actions() if m.text() == "&File")
    file_menu.aboutToShow.emit()
    assert not action.isEnabled()  # nothing imported yet
    file_menu.aboutToHide.emit()
    outcome: list = []
    import_annotations_to(window, "coco", tmp_path / "cups.json", on_done=lambda s, e: outcome.append((s, e)))
    qtbot.waitUntil(lambda: bool(outcome), timeout=30000)
    assert len(window.controller.annotations) == 1
    file_menu.aboutToShow.emit()
    assert action.isEnabled() and action.text() == "Undo import of cups.json…"
    file_menu.aboutToHide.emit()
    asked: list[str] = []

    def answer(reply):
        def question(_parent, _title, text, *args, **kwargs):
            asked.append(text)
            return reply
        return question

    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.No))
    QTest.keyClick(window, Qt.Key.Key_U, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert asked == ["Remove the 1 annotation imported from cups.json? Labels it added go too when nothing else "
                     "uses them. This cannot be undone."]
    assert len(window.controller.annotations) == 1  # declined: nothing changed
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    action.trigger()
    assert window.controller.annotations == [] and window.project.annotations() == []
    assert "cup" not in key_column(window.labels_panel)
    assert "Undid the import of cups.json: removed 1 annotation, 1 label." in window.status.full_text()
    action.trigger()
    assert "There is no import to undo" in window.status.full_text()
    window.close()
