"""Review mode in the real window with real key and mouse events (issue 11): accept, reject,
relabel, refine, accept-all-above with the score threshold, undo; the "to review" count and the
image list's review state. The proposals are stored the way a run stores them (core.runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import copy_samples
from PySide6.QtCore import Qt
from test_gui_workflow import key, make_window, open_image, view_point, wait_candidate

from seem_annotator.annotate.work import Proposal
from seem_annotator.core import masks
from seem_annotator.core import runs as run_store
from seem_annotator.core.project import Project

pytestmark = pytest.mark.timeout(240)
CTRL, SHIFT = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier


def box_proposal(shape: tuple[int, int], box: tuple[int, int, int, int], label: str, score: float) -> Proposal:
    x0, y0, x1, y1 = box
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return Proposal(label, score, "everything", masks.encode(mask), [x0, y0, x1 - x0, y1 - y0])


@pytest.fixture
def project_with_proposals(tmp_path: Path) -> Path:
    folder = copy_samples(tmp_path / "samples")
    with Project.create(folder) as project:
        for name in ("cat", "cup", "wall"):
            project.add_label(name)
        chelsea = project.image_by_name("chelsea.jpg")
        coffee = project.image_by_name("coffee.jpg")
        run, _ = run_store.open_run(project.store, "test-run", {"modes": ["everything"]}, "tiny", None, "local")
        shape_c = (chelsea.height, chelsea.width)
        run_store.merge_image(project.store, run.id, chelsea.id, [
            box_proposal(shape_c, (150, 80, 330, 290), "cat", 0.9),
            box_proposal(shape_c, (0, 0, 80, 60), "wall", 0.6),
            box_proposal(shape_c, (360, 0, 450, 60), "wall", 0.2),
        ], None, 0.1, 0.7)
        shape_k = (coffee.height, coffee.width)
        run_store.merge_image(project.store, run.id, coffee.id, [
            box_proposal(shape_k, (100, 50, 400, 300), "cup", 0.8),
            box_proposal(shape_k, (0, 0, 60, 60), "wall", 0.7),
        ], None, 0.1, 0.7)
    return folder


def pending(window) -> list[tuple[str, str, float]]:
    return [(p.label, window.project.image(p.image_id).file_name, round(p.score, 2))
            for p in window.project.proposals()]


def test_review_keys_accept_reject_relabel_threshold_and_undo(qtbot, tmp_path: Path, project_with_proposals) -> None:
    window = make_window(qtbot, tmp_path)
    assert window.open_folder(project_with_proposals)
    ctl = window.controller
    open_image(window, "chelsea.jpg")
    review = window.review
    assert window.review_ui.count.text() == "to review: 5"
    window.images_panel.filter.setCurrentText("To review")
    visible = {window.project.image(i).file_name for i in window.images_panel.visible_ids()}
    assert visible == {"chelsea.jpg", "coffee.jpg"}
    window.images_panel.filter.setCurrentText("All")

    key(window, Qt.Key.Key_P, CTRL)  # start review: this image, best first
    assert review.active and review.current().label == "cat" and review.current().score == pytest.approx(0.9)
    assert not window.canvas._review_item.pixmap().isNull(), "the proposal is shown on the canvas"

    # Enter accepts: an annotation keeping the run's provenance and score.
    key(window, Qt.Key.Key_Return)
    assert [window.project.label(a.label_id).name for a in ctl.annotations] == ["cat"]
    ann = ctl.annotations[0]
    assert ann.score == pytest.approx(0.9) and ann.source["run_id"] and ann.source["mode"] == "everything"
    assert review.current().label == "wall" and review.current().score == pytest.approx(0.6)

    # A digit relabels the shown proposal (it stays pending), X rejects the next one.
    key(window, Qt.Key.Key_2)  # "cup" is the second label
    assert review.current().label == "cup"
    key(window, Qt.Key.Key_X)
    assert ("cup", "chelsea.jpg", 0.6) not in pending(window)
    assert review.current().score == pytest.approx(0.2)

    # Undo brings the rejected proposal back to the queue; redo rejects it again.
    key(window, Qt.Key.Key_Z, CTRL)
    assert ("cup", "chelsea.jpg", 0.6) in pending(window)
    key(window, Qt.Key.Key_Z, CTRL | SHIFT)
    assert ("cup", "chelsea.jpg", 0.6) not in pending(window)

    # The threshold hides the weak one; nothing is left here, so the review moves to coffee.jpg.
    window.review_ui.panel.slider.setValue(50)
    qtbot.waitUntil(lambda: ctl.image_id == window.project.image_by_name("coffee.jpg").id, timeout=10000)
    qtbot.waitUntil(lambda: review.current() is not None and review.current().label == "cup", timeout=10000)
    # Shift+Enter accepts every proposal of the image at or above the threshold, in one step.
    key(window, Qt.Key.Key_Return, SHIFT)
    assert sorted(window.project.label(a.label_id).name for a in ctl.annotations) == ["cup", "wall"]
    assert pending(window) == [("wall", "chelsea.jpg", 0.2)]
    assert window.review_ui.count.text() == "to review: 1"
    key(window, Qt.Key.Key_Z, CTRL)
    assert ctl.annotations == [] and len(pending(window)) == 3
    window.close()


def test_a_click_refines_the_proposal_and_enter_accepts_the_refined_mask(qtbot, tmp_path: Path,
                                                                         project_with_proposals) -> None:
    window = make_window(qtbot, tmp_path)
    window.open_folder(project_with_proposals)
    ctl = window.controller
    ctl.tiny_mask_pixels, ctl.tiny_mask_fraction = 0, 0.0
    open_image(window, "chelsea.jpg")
    requests = []
    window.model.bridge.result.connect(lambda request, _c, _r: requests.append(request))
    key(window, Qt.Key.Key_P, CTRL)
    proposal = window.review.current()
    assert proposal.label == "cat"
    key(window, Qt.Key.Key_C)
    from PySide6.QtTest import QTest

    QTest.mouseClick(window.canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     view_point(window, 240, 170))
    wait_candidate(qtbot, window)
    qtbot.waitUntil(lambda: len(requests) == 1, timeout=10000)
    # The proposal's mask was the first round: the model got it as the previous mask.
    assert ctl.refining == proposal.id and len(ctl.session.rounds) == 2
    assert masks.iou(masks.encode(requests[0].previous_mask), proposal.rle) > 0.99
    key(window, Qt.Key.Key_Return)
    assert ctl.session is None and len(ctl.annotations) == 1
    ann = ctl.annotations[0]
    assert window.project.label(ann.label_id).name == "cat"  # the proposal's label
    assert ann.source.get("refined") is True and ann.source["proposal_id"] == proposal.id
    assert all(p.id != proposal.id for p in window.project.proposals())
    # Undo: the proposal is pending again, then the refinement comes back in progress.
    key(window, Qt.Key.Key_Z, CTRL)
    assert ctl.annotations == [] and any(p.id == proposal.id for p in window.project.proposals())
    key(window, Qt.Key.Key_Z, CTRL)
    assert ctl.session is not None and ctl.refining == proposal.id
    window.close()


FIXTURE = Path(__file__).resolve().parents[1].parent / "shared" / "seem" / "fixtures" / "tiny_focalt_v1"


def test_the_run_dialog_says_a_checkpoint_is_needed(qtbot, tmp_path: Path, project_with_proposals,
                                                    monkeypatch) -> None:
    monkeypatch.setenv("SEEM_ANNOTATOR_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    window = make_window(qtbot, tmp_path)
    window.open_folder(project_with_proposals)
    key(window, Qt.Key.Key_A, CTRL | SHIFT)
    dialog = window.review_ui.dialog
    assert dialog is not None and dialog.isVisible()
    dialog.model.setCurrentText("focalt_v1")
    assert not dialog.start()  # a released model that is not here is offered for download first
    assert "focalt_v1 is not on this machine" in dialog.message.text()
    assert "choose the checkpoint file" in dialog.message.text() and dialog.start_button.isEnabled()
    # A config file has no released weights to fetch: the checkpoint is looked for off the GUI thread.
    dialog.model.setCurrentText(str(FIXTURE / "config.yaml"))
    assert dialog.start()
    qtbot.waitUntil(lambda: dialog.error is not None, timeout=30000)
    assert "needs SEEM weights for" in dialog.error and "choose the checkpoint file" in dialog.error
    assert "--checkpoint" not in dialog.error  # the dialog's own words, not the CLI's
    assert dialog.message.text() == dialog.error and dialog.start_button.isEnabled()
    window.close()


def test_the_run_dialog_downloads_a_missing_model_then_runs(qtbot, tmp_path: Path, project_with_proposals,
                                                            fake_seem_download: list[str], monkeypatch) -> None:
    from PySide6.QtWidgets import QMessageBox

    fetched = fake_seem_download
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window = make_window(qtbot, tmp_path)
    window.settings.setValue("ui/quiet_errors", False)  # the person is asked (answered Yes above)
    window.open_folder(project_with_proposals)
    key(window, Qt.Key.Key_A, CTRL | SHIFT)
    dialog = window.review_ui.dialog
    dialog.model.setCurrentText("focalt_v1")
    assert not dialog.start()
    # Downloaded, then the run starts by itself; the fake file is no checkpoint, which it says.
    qtbot.waitUntil(lambda: dialog.error is not None, timeout=30000)
    assert fetched == ["focalt_v1"] and "The downloaded weights of focalt_v1" in dialog.error
    assert "cannot be used" in dialog.error and "download them again" in dialog.error
    window.settings.setValue("ui/quiet_errors", True)
    window.close()


@pytest.mark.skipif(not (FIXTURE / "state_dict.pt").is_file(), reason="shared SEEM fixture not found")
def test_the_run_dialog_runs_resumes_and_feeds_the_review(qtbot, tmp_path: Path) -> None:
    folder = copy_samples(tmp_path / "samples")
    window = make_window(qtbot, tmp_path)
    window.open_folder(folder)
    open_image(window, "chelsea.jpg")
    window.review_ui.auto_annotate()
    dialog = window.review_ui.dialog
    dialog.model.setCurrentText(str(FIXTURE / "config.yaml"))
    dialog.checkpoint.setText(str(FIXTURE / "state_dict.pt"))
    dialog.labels.setText("cat, cup")
    dialog.images.setCurrentIndex(dialog.images.findData("current"))
    assert dialog.start(), dialog.message.text()
    qtbot.waitUntil(lambda: dialog.summary is not None, timeout=180000)
    summary = dialog.summary
    assert summary.images == 1 and summary.failed == 0
    assert summary.proposals == window.project.pending_proposal_count() > 0
    assert window.review_ui.count.text() == f"to review: {summary.proposals}"
    # The same settings again: the run is resumed, the image is skipped, nothing is added twice.
    assert dialog.start()
    qtbot.waitUntil(lambda: dialog.summary is not None and dialog.summary is not summary, timeout=180000)
    assert dialog.summary.resumed and dialog.summary.skipped == 1 and dialog.summary.proposals == 0
    assert "resumed run" in dialog.message.text()
    assert window.project.pending_proposal_count() == summary.proposals
    # Review picks them up: back in the main window, start, accept the first (naming it when the
    # random-weight model called it "unknown": Enter alone never stores "unknown").
    unknown = [p for p in window.project.proposals() if p.label == "unknown"]
    from PySide6.QtTest import QTest

    dialog.close()
    window.activateWindow()
    assert QTest.qWaitForWindowActive(window)
    key(window, Qt.Key.Key_P, CTRL)
    assert window.review.current() is not None
    if window.review.current().label == "unknown":
        key(window, Qt.Key.Key_Return)
        assert window.controller.annotations == [] and "has no label" in window.status.full_text()
        window.label_field.setText("cat")
    key(window, Qt.Key.Key_Return)
    assert len(window.controller.annotations) == 1
    assert "unknown" not in [label.name for label in window.project.labels()] or not unknown
    assert window.controller.annotations[0].source["run_id"] == summary.run_id
    window.close()


def test_an_unknown_proposal_is_named_before_it_is_accepted(qtbot, tmp_path: Path) -> None:
    folder = copy_samples(tmp_path / "samples")
    with Project.create(folder) as project:
        project.add_label("cat")
        chelsea = project.image_by_name("chelsea.jpg")
        run, _ = run_store.open_run(project.store, "unknown-run", {"modes": ["everything"]}, "tiny", None, "local")
        run_store.merge_image(project.store, run.id, chelsea.id,
                              [box_proposal((chelsea.height, chelsea.width), (150, 80, 330, 290), "unknown", 0.5)],
                              None, 0.1, 0.7)
    window = make_window(qtbot, tmp_path)
    window.open_folder(folder)
    open_image(window, "chelsea.jpg")
    key(window, Qt.Key.Key_P, CTRL)
    key(window, Qt.Key.Key_Return)
    assert window.controller.annotations == [] and window.review.current().label == "unknown"
    assert "has no label" in window.status.full_text()
    key(window, Qt.Key.Key_1)  # name it with the first label's digit, then accept
    key(window, Qt.Key.Key_Return)
    assert [window.project.label(a.label_id).name for a in window.controller.annotations] == ["cat"]
    assert "unknown" not in [label.name for label in window.project.labels()]
    window.close()


def test_a_refinement_whose_proposal_was_reviewed_meanwhile_is_kept_as_a_new_object(qtbot, tmp_path: Path,
                                                                                  project_with_proposals) -> None:
    window = make_window(qtbot, tmp_path)
    window.open_folder(project_with_proposals)
    ctl = window.controller
    ctl.tiny_mask_pixels, ctl.tiny_mask_fraction = 0, 0.0
    open_image(window, "chelsea.jpg")
    key(window, Qt.Key.Key_P, CTRL)
    proposal = window.review.current()
    from PySide6.QtTest import QTest

    QTest.mouseClick(window.canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     view_point(window, 240, 170))
    wait_candidate(qtbot, window)
    assert ctl.refining == proposal.id
    window.project.reject_proposal(proposal.id)  # e.g. from another window or the command line
    key(window, Qt.Key.Key_Return)
    assert ctl.session is None and len(ctl.annotations) == 1
    assert "proposal_id" not in ctl.annotations[0].source  # an interactive object, not the proposal
    window.close()


def test_review_mode_is_not_entered_when_the_project_has_no_proposals(qtbot, tmp_path: Path) -> None:
    """Found in the app: Start review in a project without proposals turned the button into "Stop
    review", a mode with nothing in it."""
    window = make_window(qtbot, tmp_path)
    assert window.open_folder(copy_samples(tmp_path / "samples"))
    open_image(window, "chelsea.jpg")
    key(window, Qt.Key.Key_P, CTRL)
    assert not window.review.active
    assert "No proposals in this project yet" in window.status.full_text()
    assert window.review_ui.panel.toggle.text() == "Start review"
    window.close()
