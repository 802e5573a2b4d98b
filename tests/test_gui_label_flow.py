"""Which label Enter, L and the digits use, in the real window with real key and mouse events
(issue 15 items 1 and 2): never a stale label from another object, a visible confirmation for a
mask so small it is probably a slip, and relabelling acts on what is selected."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import copy_samples
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QInputDialog
from test_gui_workflow import CHELSEA_CAT, click, key, make_window, open_image, wait_candidate

pytestmark = pytest.mark.timeout(240)

ASTRONAUT_FACE = (225.0, 120.0)  # a point on the astronaut's face in resources/samples/astronaut.jpg


@pytest.fixture
def samples(tmp_path: Path) -> Path:
    return copy_samples(tmp_path / "samples")


class DialogAnswers:
    """Stands in for QInputDialog.getItem: records what the dialog was opened with, answers in turn."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.opened: list[tuple[list[str], str]] = []

    def __call__(self, parent, title, text, items, current=0, editable=True, *args, **kwargs):
        self.opened.append((list(items), items[current] if items else ""))
        return self.answers.pop(0), True


def label_names(window) -> list[str]:
    ctl = window.controller
    return [window.project.label(a.label_id).name for a in ctl.annotations]


def without_tiny_mask_check(window) -> None:
    """For tests about labels: a click's mask size is the backend's business, not theirs."""
    window.controller.tiny_mask_pixels = 0
    window.controller.tiny_mask_fraction = 0.0


def accept_with_label(window, name: str) -> None:
    window.label_field.setFocus()
    window.label_field.setText(name)
    key(window, Qt.Key.Key_Return)


def test_enter_never_uses_the_last_label_unless_keep_last_label_is_on(qtbot, tmp_path: Path, samples: Path,
                                                                      monkeypatch) -> None:
    window = make_window(qtbot, tmp_path)
    window.open_folder(samples)
    without_tiny_mask_check(window)
    open_image(window, "astronaut.jpg")
    click(window, *ASTRONAUT_FACE)
    wait_candidate(qtbot, window)
    accept_with_label(window, "shuttle")
    assert label_names(window) == ["shuttle"]

    # Another image, one click, Enter: "Keep last label" is off and the classical backend proposes
    # no label, so the window asks (last label offered as a suggestion) instead of using "shuttle".
    assert not window.labels_panel.keep_last.isChecked()
    open_image(window, "chelsea.jpg")
    click(window, *CHELSEA_CAT)
    wait_candidate(qtbot, window)
    dialog = DialogAnswers("cat")
    monkeypatch.setattr(QInputDialog, "getItem", dialog)
    key(window, Qt.Key.Key_Return)
    assert len(dialog.opened) == 1, "Enter with no label to use must ask"
    assert label_names(window) == ["cat"]

    # With "Keep last label" on, Enter uses it without asking.
    window.labels_panel.keep_last.setChecked(True)
    click(window, 60.0, 60.0)
    wait_candidate(qtbot, window)
    key(window, Qt.Key.Key_Return)
    assert len(dialog.opened) == 1
    assert label_names(window) == ["cat", "cat"]
    window.close()


def test_a_tiny_mask_needs_a_second_enter(qtbot, tmp_path: Path, samples: Path) -> None:
    window = make_window(qtbot, tmp_path)
    window.open_folder(samples)
    ctl = window.controller
    open_image(window, "chelsea.jpg")
    click(window, *CHELSEA_CAT)
    mask = wait_candidate(qtbot, window)
    area = int(mask.sum())
    # The rule, not the click, decides: call anything up to this mask's size "tiny".
    ctl.tiny_mask_pixels = area + 1
    accept_with_label(window, "cat")
    assert ctl.annotations == [] and ctl.session is not None, "a tiny mask is not accepted at the first Enter"
    assert f"tiny ({area} px" in window.status.full_text()
    key(window, Qt.Key.Key_Return)
    assert label_names(window) == ["cat"] and ctl.session is None

    # A plausible mask is accepted at the first Enter, as always.
    ctl.tiny_mask_pixels = 64
    open_image(window, "astronaut.jpg")
    click(window, *ASTRONAUT_FACE)
    assert wait_candidate(qtbot, window).sum() >= 64 * 10
    accept_with_label(window, "person")
    assert label_names(window) == ["person"] and ctl.session is None
    window.close()


def test_relabel_acts_on_the_selection_and_starts_from_its_label(qtbot, tmp_path: Path, samples: Path,
                                                                  monkeypatch) -> None:
    window = make_window(qtbot, tmp_path)
    window.open_folder(samples)
    ctl = window.controller
    without_tiny_mask_check(window)
    open_image(window, "chelsea.jpg")
    click(window, *CHELSEA_CAT)
    wait_candidate(qtbot, window)
    accept_with_label(window, "cat")
    click(window, 40.0, 40.0)  # a second object, still open
    wait_candidate(qtbot, window)
    accept_with_label(window, "wall")
    open_object_click = (40.0, 260.0)
    click(window, *open_object_click)
    wait_candidate(qtbot, window)
    session_id = ctl.session.id

    # Select the cat with the select tool while the new object is open, then L.
    key(window, Qt.Key.Key_Q)
    click(window, *CHELSEA_CAT)
    cat = next(a for a in ctl.annotations if window.project.label(a.label_id).name == "cat")
    assert ctl.selected == [cat.id]
    dialog = DialogAnswers("tabby")
    monkeypatch.setattr(QInputDialog, "getItem", dialog)
    key(window, Qt.Key.Key_L)
    assert dialog.opened and dialog.opened[0][1] == "cat", "the dialog starts from the annotation's own label"
    assert sorted(label_names(window)) == ["tabby", "wall"]
    assert ctl.session is not None and ctl.session.id == session_id and ctl.pending_label is None
    assert window.project.info()["labels"].get("tabby") == 1

    # A digit relabels the selection too, not the open object.
    key(window, Qt.Key.Key_2)  # second label in the list
    second = ctl.labels()[1].name
    assert window.project.label(next(a for a in ctl.annotations if a.id == cat.id).label_id).name == second
    assert ctl.pending_label is None
    window.close()


def test_the_last_label_follows_a_rename(qtbot, tmp_path: Path, samples: Path, monkeypatch) -> None:
    """Found in the app: after renaming cat to kitty, Enter's dialog offered "cat" and accepting
    it brought back a second label "cat"."""
    window = make_window(qtbot, tmp_path)
    window.open_folder(samples)
    without_tiny_mask_check(window)
    open_image(window, "chelsea.jpg")
    click(window, *CHELSEA_CAT)
    wait_candidate(qtbot, window)
    accept_with_label(window, "cat")
    cat = window.project.label_by_name("cat")
    window.project.rename_label(cat.id, "kitty")
    window.refresh_labels()
    click(window, 60.0, 60.0)
    wait_candidate(qtbot, window)
    dialog = DialogAnswers("kitty")
    monkeypatch.setattr(QInputDialog, "getItem", dialog)
    key(window, Qt.Key.Key_Return)
    items, offered = dialog.opened[0]
    assert offered == "kitty" and "cat" not in items
    # "Keep last label" accepts with the renamed label, and no "cat" comes back.
    window.labels_panel.keep_last.setChecked(True)
    click(window, 400.0, 250.0)
    wait_candidate(qtbot, window)
    key(window, Qt.Key.Key_Return)
    assert label_names(window) == ["kitty", "kitty", "kitty"]
    assert [label.name for label in window.project.labels()] == ["kitty"]
    # A deleted label is not offered again either.
    window.project.merge_labels(window.project.label_by_name("kitty").id, window.project.add_label("cat").id)
    assert window.controller.last_label is None
    window.close()


def test_a_spoken_label_is_made_only_when_its_object_is_accepted(qtbot, tmp_path: Path, samples: Path) -> None:
    """Found in the app: "label it as whiskers", then Esc, left an empty label "whiskers" behind."""
    window = make_window(qtbot, tmp_path)
    window.open_folder(samples)
    without_tiny_mask_check(window)
    ctl = window.controller
    open_image(window, "chelsea.jpg")
    click(window, *CHELSEA_CAT)
    wait_candidate(qtbot, window)
    window.voice_panel.transcript.setText("label it as whiskers")
    window.voice_panel.run_button.click()
    assert ctl.pending_label == "whiskers" and window.project.label_by_name("whiskers") is None
    key(window, Qt.Key.Key_Escape)
    assert window.project.label_by_name("whiskers") is None
    click(window, *CHELSEA_CAT)
    wait_candidate(qtbot, window)
    ctl.set_label("  Whiskers ")
    assert ctl.pending_label == "Whiskers"
    key(window, Qt.Key.Key_Return)
    assert label_names(window) == ["Whiskers"]
    ctl.set_label("WHISKERS")  # an existing label is named as it is spelt in the project
    assert ctl.pending_label == "Whiskers"
    window.close()
