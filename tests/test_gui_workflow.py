"""The desktop app end to end: the real main window, real mouse and key events on the canvas, the
classical backend on the real worker thread, the real project store and exporters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_samples
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt
from PySide6.QtTest import QTest

from seem_annotator.core import masks
from seem_annotator.core.project import Project

pytestmark = pytest.mark.timeout(240)


CHELSEA_CAT = (240.0, 170.0)  # a point on the cat in resources/samples/chelsea.jpg (451x300)


@pytest.fixture
def samples(tmp_path: Path) -> Path:
    folder = tmp_path / "samples"
    copy_samples(folder)
    return folder


def make_window(qtbot, tmp_path: Path, **kwargs):
    from seem_annotator.gui.main_window import MainWindow

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    settings.setValue("ui/quiet_errors", True)  # errors go to the status bar, no modal box in tests
    window = MainWindow(settings=settings, backend_name="classical", **kwargs)
    qtbot.addWidget(window)
    window.resize(1280, 860)
    window.show()
    window.activateWindow()
    # Window shortcuts only fire in the active window.
    assert QTest.qWaitForWindowActive(window)
    return window


def open_image(window, name: str) -> None:
    image = window.project.image_by_name(name)
    window.show_image(image.id)
    assert window.controller.image_id == image.id


def view_point(window, x: float, y: float) -> QPoint:
    return window.canvas.mapFromScene(x, y)


def click(window, x: float, y: float, button=Qt.MouseButton.LeftButton, modifiers=Qt.KeyboardModifier.NoModifier):
    QTest.mouseClick(window.canvas.viewport(), button, modifiers, view_point(window, x, y))


def key(window, key_code, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    window.canvas.setFocus()
    QTest.keyClick(window.canvas, key_code, modifiers)


def draw_square(window, x0: float, y0: float, x1: float, y1: float) -> None:
    """Manual polygon (M): click the four corners, close it by clicking the first again."""
    key(window, Qt.Key.Key_M)
    for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)):
        click(window, x, y)


def wait_candidate(qtbot, window, timeout: int = 60000) -> np.ndarray:
    ctl = window.controller
    qtbot.waitUntil(lambda: ctl._latest is None and ctl.candidate_mask is not None, timeout=timeout)
    return ctl.candidate_mask


def test_click_accept_undo_redo_relabel_export_reopen(qtbot, tmp_path: Path, samples: Path) -> None:
    window = make_window(qtbot, tmp_path)
    assert window.open_folder(samples)
    assert window.status.backend.text() == "backend: classical"
    assert window.banner.isVisibleTo(window)  # no SEEM checkpoint: the banner explains what works
    open_image(window, "chelsea.jpg")
    ctl = window.controller

    # A positive click on the cat: a round on the worker, a candidate mask on the canvas.
    click(window, *CHELSEA_CAT)
    assert ctl.pending, "the click is queued as a pending prompt at once"
    mask = wait_candidate(qtbot, window)
    assert mask.shape == (300, 451) and mask[int(CHELSEA_CAT[1]), int(CHELSEA_CAT[0])]
    assert mask.sum() > 500
    assert window.canvas.has_candidate()
    assert len(ctl.session.rounds) == 1
    assert window.status.decode.text().startswith("decode: ")

    # A negative (right) click refines it in a second round of the same object.
    click(window, 20, 20, Qt.MouseButton.RightButton)
    wait_candidate(qtbot, window)
    assert len(ctl.session.rounds) == 2
    assert [p.positive for p in ctl.session.all_prompts()] == [True, False]

    # Type a label (completion from the label list) and press Enter on the canvas.
    window.label_field.setFocus()
    QTest.keyClicks(window.label_field, "cat")
    key(window, Qt.Key.Key_Return)
    assert ctl.session is None
    assert [window.project.label(a.label_id).name for a in ctl.annotations] == ["cat"]
    accepted_rle = ctl.annotations[0].rle
    assert window.labels_panel.tree.topLevelItem(0).text(2) == "1"

    # Undo brings the object back in progress with both rounds; redo accepts it again.
    key(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert ctl.annotations == [] and ctl.session is not None and len(ctl.session.rounds) == 2
    assert window.canvas.has_candidate()
    assert "Undone: accept." in window.status.full_text()  # the status bar says what Ctrl+Z took back
    key(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert len(ctl.annotations) == 1 and ctl.session is None
    assert "Redone: accept." in window.status.full_text()

    # Relabel: select it with the select tool (Q), then choose another label.
    key(window, Qt.Key.Key_Q)
    assert window.canvas.tool.name == "select"
    click(window, *CHELSEA_CAT)
    assert ctl.selected == [ctl.annotations[0].id]
    window.commands.set_label("tabby")
    assert window.project.label(ctl.annotations[0].label_id).name == "tabby"
    key(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.project.label(ctl.annotations[0].label_id).name == "cat"
    key(window, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert window.project.label(ctl.annotations[0].label_id).name == "tabby"

    # Another image with A/D; leave an object in progress there.
    key(window, Qt.Key.Key_C)
    key(window, Qt.Key.Key_D)
    coffee = window.project.image_by_name("coffee.jpg")
    assert ctl.image_id == coffee.id
    click(window, 300, 190)
    wait_candidate(qtbot, window)
    in_progress_rounds = len(ctl.session.rounds)

    # Export COCO and LabelMe through the same path as the dialog.
    from seem_annotator.gui.export_flow import export_to

    outcomes: dict[str, tuple] = {}
    coco_out = tmp_path / "out" / "coco.json"
    labelme_out = tmp_path / "out" / "labelme"
    export_to(window, "coco", coco_out, {}, lambda r, e: outcomes.__setitem__("coco", (r, e)))
    qtbot.waitUntil(lambda: "coco" in outcomes, timeout=30000)
    export_to(window, "labelme", labelme_out, {}, lambda r, e: outcomes.__setitem__("labelme", (r, e)))
    qtbot.waitUntil(lambda: "labelme" in outcomes, timeout=30000)
    assert outcomes["coco"][1] is None and outcomes["labelme"][1] is None
    from pycocotools.coco import COCO

    coco = COCO(str(coco_out))
    assert all((samples / im["file_name"]).is_file() for im in coco.dataset["images"])  # images-root relative
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == 1 and coco.loadCats(anns[0]["category_id"])[0]["name"] == "tabby"
    assert masks.iou(masks.normalize(coco.annToRLE(anns[0])), accepted_rle) > 0.98
    sidecars = list(labelme_out.rglob("*.json"))
    chelsea_json = json.loads(next(p for p in sidecars if p.stem == "chelsea").read_text())
    labels = [s["label"] for s in chelsea_json["shapes"]]  # one shape per part of the mask
    assert labels and set(labels) == {"tabby"}

    # Close and reopen: annotations, labels and the object in progress with its rounds are back.
    window.close()
    window2 = make_window(qtbot, tmp_path)
    assert window2.open_folder(samples)
    assert window2.controller.image_id == coffee.id  # the last image is reopened
    ctl2 = window2.controller
    assert ctl2.session is not None and len(ctl2.session.rounds) == in_progress_rounds
    assert window2.canvas.has_candidate()
    key(window2, Qt.Key.Key_Escape)  # discard the object in progress (undoable)
    assert ctl2.session is None
    key(window2, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert ctl2.session is not None and len(ctl2.session.rounds) == in_progress_rounds
    key(window2, Qt.Key.Key_A)
    anns2 = ctl2.annotations
    assert len(anns2) == 1 and anns2[0].rle == accepted_rle
    assert window2.project.label(anns2[0].label_id).name == "tabby"
    window2.close()
    with Project.open(samples) as project:
        assert project.info()["labels"]["tabby"] == 1


def test_brush_manual_polygon_and_edits(qtbot, tmp_path: Path, samples: Path) -> None:
    window = make_window(qtbot, tmp_path)
    window.open_folder(samples)
    open_image(window, "coffee.jpg")
    ctl = window.controller
    # Manual polygon (M): click four corners, close by clicking the first vertex; no model involved.
    draw_square(window, 100, 100, 200, 200)
    assert ctl.candidate_mask is not None and abs(int(ctl.candidate_mask.sum()) - 101 * 101) < 400
    assert ctl.session.rounds[-1].backend == "edit:manual"
    # Brush (R) paints onto the candidate: a drag with real mouse events.
    key(window, Qt.Key.Key_R)
    vp = window.canvas.viewport()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, view_point(window, 250, 150))
    QTest.mouseMove(vp, view_point(window, 280, 150))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, view_point(window, 300, 150))
    assert ctl.candidate_mask[150, 275]
    assert len(ctl.session.rounds) == 2
    key(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo the brush stroke only
    assert not ctl.candidate_mask[150, 275] and ctl.candidate_mask[150, 150]
    window.sidecar_action.setChecked(True)  # File menu: LabelMe files beside the images
    window.commands.accept("saucer")
    sidecar = samples / "coffee.json"
    qtbot.waitUntil(sidecar.exists, timeout=5000)
    assert [s["label"] for s in json.loads(sidecar.read_text())["shapes"]] == ["saucer"]
    window.sidecar_action.setChecked(False)
    # Second object, then merge the two with Shift+click selection and split them again.
    draw_square(window, 300, 300, 350, 350)
    window.commands.accept("saucer")
    assert len(ctl.annotations) == 2
    key(window, Qt.Key.Key_Q)
    click(window, 150, 150)
    click(window, 320, 320, modifiers=Qt.KeyboardModifier.ShiftModifier)
    assert len(ctl.selected) == 2
    key(window, Qt.Key.Key_M, Qt.KeyboardModifier.ControlModifier)
    assert len(ctl.annotations) == 1
    click(window, 150, 150)
    key(window, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    assert len(ctl.annotations) == 2
    # Z-order: bring the bottom one to the top with "]", and back with "[".
    bottom = ctl.annotations[0].id
    click(window, *next(p for p in ((150, 150), (320, 320)) if window.canvas.annotation_at(QPointF(*p)) == bottom))
    assert ctl.selected == [bottom]
    key(window, Qt.Key.Key_BracketRight)
    assert ctl.annotations[-1].id == bottom
    key(window, Qt.Key.Key_BracketLeft)
    assert ctl.annotations[0].id == bottom
    # Delete the hovered/selected one.
    click(window, 320, 320)
    key(window, Qt.Key.Key_Delete)
    assert len(ctl.annotations) == 1
    # Enter pressed before the answer arrives accepts it as soon as it is there.
    key(window, Qt.Key.Key_C)
    count = len(ctl.annotations)
    ctl.tiny_mask_pixels, ctl.tiny_mask_fraction = 0, 0.0  # whatever this click gives is accepted at once
    click(window, 420, 60)
    window.label_field.setText("saucer")  # no "Keep last label": Enter needs a label to use
    key(window, Qt.Key.Key_Return)
    assert ctl._latest is not None and len(ctl.annotations) == count
    qtbot.waitUntil(lambda: len(ctl.annotations) == count + 1, timeout=60000)
    assert ctl.session is None
    key(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    key(window, Qt.Key.Key_Escape)
    assert len(ctl.annotations) == count
    # Digit keys pick labels by their shortcut.
    window.project.add_label("cup", shortcut=3)
    window.refresh_labels()
    key(window, Qt.Key.Key_C)
    click(window, 250, 120)
    wait_candidate(qtbot, window)
    key(window, Qt.Key.Key_3)
    assert ctl.pending_label == "cup"
    key(window, Qt.Key.Key_Escape)
    assert ctl.session is None or not ctl.session.rounds
    # Segment everything: review the candidates on the canvas, accept the checked ones.
    before = len(ctl.annotations)
    key(window, Qt.Key.Key_E, Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: window.model._review is not None and window.model._review.isVisible(), timeout=60000)
    review = window.model._review
    assert review.list.count() >= 3
    for row in range(review.list.count()):
        review.list.item(row).setCheckState(Qt.CheckState.Checked if row < 3 else Qt.CheckState.Unchecked)
    assert not window.canvas._review_item.pixmap().isNull()
    QTest.mouseClick(review.accept_checked, Qt.MouseButton.LeftButton)
    assert len(ctl.annotations) == before + 3
    assert window.canvas._review_item.pixmap().isNull()
    assert {window.project.label(a.label_id).name for a in ctl.annotations[before:]} == {"object"}
    window.activateWindow()
    assert QTest.qWaitForWindowActive(window)
    key(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # the last accept is undone:
    assert len(ctl.annotations) == before + 2 and len(ctl.session.rounds) == 1  # back in progress
    key(window, Qt.Key.Key_Escape)
    # Text prompts need SEEM: a clear message, nothing stored, the app carries on.
    window.commands.text_prompt("the cup")
    qtbot.waitUntil(lambda: ctl._latest is None, timeout=30000)
    assert "SEEM" in window.statusBar().currentMessage()
    assert ctl.session is None or not ctl.session.rounds
    window.close()


def test_drop_a_folder_and_recent_projects(qtbot, tmp_path: Path, samples: Path) -> None:
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    window = make_window(qtbot, tmp_path)
    assert window.project is None
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(samples))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    assert window.project is not None and window.project.root == samples.resolve()
    assert (samples / ".seem-annotator" / "project.sqlite").is_file()  # the store sits beside the images
    window.fill_recent_menu()
    assert [a.text() for a in window.recent_menu.actions()] == [str(samples.resolve())]
    window.close()


def test_switching_to_seem_without_checkpoint_keeps_working(qtbot, tmp_path: Path, samples: Path,
                                                            monkeypatch) -> None:
    monkeypatch.setenv("SEEM_ANNOTATOR_CACHE", str(tmp_path / "cache"))
    window = make_window(qtbot, tmp_path)
    window.open_folder(samples)
    window.model.switch("seem:focalt_v1", "cpu")
    qtbot.waitUntil(lambda: "models download focalt_v1" in window.statusBar().currentMessage(), timeout=60000)
    assert window.model.backend_name == "classical" and window.banner.isVisibleTo(window)
    open_image(window, "chelsea.jpg")
    click(window, *CHELSEA_CAT)  # the classical backend still answers
    wait_candidate(qtbot, window)
    window.close()


def test_labels_panel_actions_are_stored(qtbot, tmp_path: Path, samples: Path) -> None:
    window = make_window(qtbot, tmp_path)
    window.open_folder(samples)
    open_image(window, "coffee.jpg")
    ctl = window.controller
    draw_square(window, 100, 100, 200, 200)
    window.commands.accept("cup")
    panel = window.labels_panel
    cup = window.project.label_by_name("cup")
    panel.add_requested.emit("mug")
    mug = window.project.label_by_name("mug")
    assert [panel.tree.topLevelItem(i).text(0) for i in range(panel.tree.topLevelItemCount())] == ["cup", "mug"]
    panel.rename_requested.emit(cup.id, "teacup")
    panel.color_requested.emit(mug.id, (1, 2, 3))
    panel.shortcut_requested.emit(mug.id, 4)
    assert window.project.label(mug.id).color == (1, 2, 3) and window.project.label(mug.id).shortcut == 4
    panel.merge_requested.emit(cup.id, mug.id)
    assert [window.project.label(a.label_id).name for a in ctl.annotations] == ["mug"]
    assert panel.tree.topLevelItem(0).text(0) == "mug" and panel.tree.topLevelItem(0).text(2) == "1"
    key(window, Qt.Key.Key_4)  # the digit set above
    assert ctl.pending_label == "mug"  # nothing selected, no object: the next object gets it
    window.close()


def key_column(panel) -> dict[str, str]:
    """label name -> the text of its Key column."""
    tree = panel.tree
    return {tree.topLevelItem(i).text(0): tree.topLevelItem(i).text(1) for i in range(tree.topLevelItemCount())}


def test_key_column_shows_the_digit_each_label_answers_to(qtbot, tmp_path: Path, samples: Path) -> None:
    window = make_window(qtbot, tmp_path)
    window.open_folder(samples)
    open_image(window, "coffee.jpg")
    panel = window.labels_panel
    for name in ("cup", "saucer", "spoon"):
        panel.add_requested.emit(name)
    assert key_column(panel) == {"cup": "1", "saucer": "2", "spoon": "3"}  # list order, as the digits act
    key(window, Qt.Key.Key_2)
    assert window.controller.pending_label == "saucer"
    # Once a label has an explicit key, digits mean only explicit keys, and the column says so.
    panel.shortcut_requested.emit(window.project.label_by_name("spoon").id, 7)
    assert key_column(panel) == {"cup": "", "saucer": "", "spoon": "7"}
    key(window, Qt.Key.Key_7)
    assert window.controller.pending_label == "spoon"
    window.close()


def everything_review_on(qtbot, window, name: str):
    """Open `name`, press Shift+E, wait for the segment-everything review: (image id, review)."""
    open_image(window, name)
    key(window, Qt.Key.Key_E, Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: window.model._review is not None and window.model._review.isVisible(), timeout=60000)
    return window.controller.image_id, window.model._review


def test_segment_everything_review_stays_with_its_image(qtbot, tmp_path: Path, samples: Path) -> None:
    window = make_window(qtbot, tmp_path)
    window.open_folder(samples)
    coffee, review = everything_review_on(qtbot, window, "coffee.jpg")
    # The review is not modal: the user moves on to another image while it is open.
    window.commands.next_image()
    other = window.controller.image_id
    assert other != coffee
    shown = len(review.candidates)
    assert f"{shown} segment-everything candidate" in window.statusBar().currentMessage()
    # The coffee candidates are neither previewed on nor accepted into the other image.
    assert not review.isVisible() and window.canvas._review_item.pixmap().isNull()
    review._finish(all_items=True)
    assert window.project.annotations(other) == [] and window.project.annotations(coffee) == []
    window.close()


def test_moving_on_after_accepting_everything_says_nothing_was_dropped(qtbot, tmp_path: Path,
                                                                       samples: Path) -> None:
    window = make_window(qtbot, tmp_path)
    window.open_folder(samples)
    coffee, review = everything_review_on(qtbot, window, "coffee.jpg")
    review._finish(all_items=True)
    assert len(window.project.annotations(coffee)) == len(review.candidates) > 0
    window.statusBar().clearMessage()
    window.commands.next_image()
    assert "segment-everything" not in window.statusBar().currentMessage().lower()
    window.close()


def test_everything_review_keeps_the_ranking_of_unnamed_regions_and_sorts_named_ones_by_size(qtbot) -> None:
    from seem_annotator.engine.types import Candidate
    from seem_annotator.gui.everything_review import EverythingReview

    def region(area: int, name: str, score: float) -> Candidate:
        mask = np.zeros((20, 20), bool)
        mask.flat[:area] = True
        return Candidate(mask=mask, score=score, labels=[(name, score)])

    # The classical backend's regions are unnamed, ranked by objectness: that order is kept.
    unnamed = EverythingReview([region(300, "unknown", 0.2), region(40, "unknown", 0.9), region(90, "unknown", 0.5)])
    qtbot.addWidget(unnamed)
    assert [c.score for c in unnamed.candidates] == [0.9, 0.5, 0.2]
    named = EverythingReview([region(40, "cup", 0.9), region(300, "table", 0.2)])
    qtbot.addWidget(named)
    assert [c.labels[0][0] for c in named.candidates] == ["table", "cup"]
    assert named.checked_indices() == [0, 1]  # SEEM's regions do not overlap: all start checked


def test_everything_review_starts_with_the_best_regions_that_do_not_overlap(qtbot) -> None:
    """Found in the app: the classical backend's 30 regions on coffee.jpg (parts and the wholes
    they belong to) all started checked, so Accept checked labelled most pixels several times."""
    from seem_annotator.engine.types import Candidate
    from seem_annotator.gui.everything_review import EverythingReview

    def rect(y0: int, y1: int, x0: int, x1: int, score: float) -> Candidate:
        mask = np.zeros((40, 40), bool)
        mask[y0:y1, x0:x1] = True
        return Candidate(mask=mask, score=score, labels=[("unknown", score)])

    cup, handle, cup_and_handle, table = (rect(0, 20, 0, 20, 0.9), rect(5, 10, 20, 25, 0.8),
                                          rect(0, 20, 0, 25, 0.7), rect(25, 40, 0, 40, 0.6))
    review = EverythingReview([table, cup_and_handle, handle, cup])
    qtbot.addWidget(review)
    assert [c.score for c in review.candidates] == [0.9, 0.8, 0.7, 0.6]
    assert review.checked_indices() == [0, 1, 3]  # cup, handle, table; not the whole they make


def test_images_added_to_the_folder_appear_on_rescan_and_reopen(qtbot, tmp_path: Path, samples: Path) -> None:
    from PIL import Image

    window = make_window(qtbot, tmp_path)
    assert window.open_folder(samples)
    before = len(window.images_panel.visible_ids())
    Image.new("RGB", (64, 48), (90, 120, 30)).save(samples / "added.png")
    window.activateWindow()
    key(window, Qt.Key.Key_F5)  # File > Rescan folder
    assert len(window.images_panel.visible_ids()) == before + 1
    assert window.project.image_by_name("added.png").readable
    assert "1 new" in window.statusBar().currentMessage()
    # The image on screen replaced by other pixels of the same size: shown (and encoded) afresh.
    ctl = window.controller
    shown = window.project.image(ctl.image_id)
    old_key, old_pixels = ctl.image.model_input.key, ctl.image.display.copy()
    Image.fromarray(255 - old_pixels).save(samples / shown.file_name)
    key(window, Qt.Key.Key_F5)
    assert "1 changed on disk" in window.statusBar().currentMessage()
    assert ctl.image.model_input.key != old_key and not np.array_equal(ctl.image.display, old_pixels)
    # Added while the app was closed: picked up when the folder is opened again.
    window.close_project()
    Image.new("RGB", (64, 48), (9, 12, 3)).save(samples / "later.png")
    assert window.open_folder(samples)
    assert len(window.images_panel.visible_ids()) == before + 2


def test_a_prompt_the_backend_cannot_answer_leaves_no_trace(qtbot, tmp_path: Path, samples: Path) -> None:
    window = make_window(qtbot, tmp_path)
    window.open_folder(samples)
    open_image(window, "chelsea.jpg")
    ctl = window.controller
    image_id = ctl.image_id
    ctl.text_prompt("the cat")  # the classical backend has no text path
    qtbot.waitUntil(lambda: ctl._latest is None, timeout=60000)
    assert ctl.session is None and window.project.current_session(image_id) is None
    assert window.project.history(image_id) == []
    # The next prompt starts a fresh object that works as usual, and Esc clears it.
    click(window, *CHELSEA_CAT)
    wait_candidate(qtbot, window)
    key(window, Qt.Key.Key_Escape)
    assert ctl.session is None and window.project.current_session(image_id) is None
    window.close()


def test_opening_the_open_project_again_keeps_it_open(qtbot, tmp_path: Path) -> None:
    # Found under Xvfb: Open recent (or Ctrl+O) on the project already open said it was "already open
    # for writing in another window or process", naming this very process.
    window = make_window(qtbot, tmp_path)
    folder = copy_samples(tmp_path / "samples")
    assert window.open_folder(folder)
    project = window.project
    open_image(window, "coffee.jpg")
    assert window.open_folder(folder) and window.open_folder(str(folder) + "/")
    assert window.project is project and window.controller.image_id == project.image_by_name("coffee.jpg").id
    assert "already open" not in window.status.full_text()
    window.close()


def test_segment_everything_review_sits_beside_the_image_and_shows_the_selected_region(
        qtbot, tmp_path: Path, samples: Path) -> None:
    # Found under Xvfb: the review opened in the middle of the window, over the regions it previews,
    # and with twenty-odd rows a person could not tell which region a row was.
    from PySide6.QtWidgets import QPushButton

    from seem_annotator.gui.everything_review import HIGHLIGHT

    window = make_window(qtbot, tmp_path)
    window.open_folder(samples)
    _, review = everything_review_on(qtbot, window, "coffee.jpg")
    canvas = window.canvas.viewport()
    centre = canvas.mapToGlobal(canvas.rect().center())
    assert not review.frameGeometry().contains(centre)
    assert review.frameGeometry().left() > centre.x()
    shown: list = []
    review.preview.connect(shown.append)
    QTest.mouseClick(next(b for b in review.findChildren(QPushButton) if b.text() == "Check all"),
                     Qt.MouseButton.LeftButton)
    review.list.item(1).setCheckState(Qt.CheckState.Unchecked)
    review.list.setCurrentRow(1)  # unchecked, yet shown while selected
    layers = shown[-1]
    index = int(review.list.item(1).data(Qt.ItemDataRole.UserRole))
    assert layers[-1][1] == HIGHLIGHT and layers[-1][0] is review.candidates[index].mask
    assert len(layers) == review.list.count()  # the other checked rows, and the selected one on top
    window.close()


def test_an_unreadable_image_says_why_on_the_canvas(qtbot, tmp_path: Path) -> None:
    # Found under Xvfb: a truncated or non-image file left the canvas blank once the status
    # message had faded.
    folder = copy_samples(tmp_path / "samples")
    (folder / "notes.jpg").write_text("hello")
    window = make_window(qtbot, tmp_path)
    window.open_folder(folder)
    open_image(window, "notes.jpg")
    text = window.canvas.placeholder
    assert "notes.jpg cannot be read" in text and "F5" in text
    assert window.canvas.display_size == (0, 0)
    assert _light_pixels(window.canvas) > 200  # the text is painted on the dark canvas
    open_image(window, "coffee.jpg")
    assert window.canvas.placeholder == "" and window.canvas.display_size[0] > 0
    window.close()


def _light_pixels(canvas) -> int:
    from PySide6.QtGui import QImage

    image = canvas.viewport().grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    pixels = rows[:, :image.width() * 3].reshape(image.height(), image.width(), 3)
    return int((pixels.min(axis=2) > 180).sum())


def test_the_key_dialog_starts_from_the_key_shown_and_keeps_the_others(qtbot, tmp_path: Path, samples: Path,
                                                                       monkeypatch) -> None:
    """Found in the app: the Key dialog of a label the column showed as 1 offered "none", and setting
    a key by hand took every other label's key away."""
    from PySide6.QtWidgets import QInputDialog

    window = make_window(qtbot, tmp_path)
    window.open_folder(samples)
    panel = window.labels_panel
    for name in ("cup", "saucer", "spoon"):
        panel.add_requested.emit(name)
    opened: list[str] = []
    answers = ["2", "7"]

    def get_item(_parent, _title, _text, items, current=0, *args, **kwargs):
        opened.append(items[current])
        return answers.pop(0), True

    monkeypatch.setattr(QInputDialog, "getItem", get_item)
    panel.tree.setCurrentItem(panel.tree.topLevelItem(1))  # saucer, shown as 2
    panel._key()
    assert opened == ["2"] and all(label.shortcut is None for label in window.project.labels())  # unchanged: nothing set
    panel.tree.setCurrentItem(panel.tree.topLevelItem(2))  # spoon, shown as 3
    panel._key()
    assert opened == ["2", "3"]
    assert key_column(panel) == {"cup": "1", "saucer": "2", "spoon": "7"}
    key(window, Qt.Key.Key_2)
    assert window.controller.pending_label == "saucer"
    window.close()


def test_merge_split_and_their_undo_say_what_they_did(qtbot, tmp_path: Path, samples: Path) -> None:
    window = make_window(qtbot, tmp_path)
    window.open_folder(samples)
    open_image(window, "coffee.jpg")
    ctl = window.controller
    for corners in ((20, 20, 80, 80), (200, 200, 260, 260)):
        draw_square(window, *corners)
        window.commands.accept("cup")
    first, second = (a.id for a in ctl.annotations)
    ctl.select_annotation(first)
    ctl.select_annotation(second, add=True)
    key(window, Qt.Key.Key_M, Qt.KeyboardModifier.ControlModifier)
    assert len(ctl.annotations) == 1
    assert "Merged 2 annotations into one (Ctrl+Z undoes)." in window.status.full_text()
    ctl.select_annotation(ctl.annotations[0].id)
    key(window, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    assert len(ctl.annotations) == 2 and "Split into 2 annotations" in window.status.full_text()
    ctl.select_annotation(ctl.annotations[0].id)
    key(window, Qt.Key.Key_K, Qt.KeyboardModifier.ControlModifier)
    assert "only one connected part" in window.status.full_text()
    key(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert len(ctl.annotations) == 1 and "Undone: split." in window.status.full_text()
    window.close()
