"""The sequence strip in the real main window: shown for frames only, keyframe vs propagated cells,
the slider and cells step frames, Propagate runs in the background with progress, Cancel stops it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from test_gui_workflow import make_window
from video_support import frame_ids, small_sequence, start_track

from seem_annotator.gui.sequence_strip import KEY, NONE, PROPAGATED

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def sequence_project(tmp_path: Path):
    project, seq_id, gts = small_sequence(tmp_path, n=6)
    with project:
        track = start_track(project, seq_id, 0, gts[0])
        ids = frame_ids(project, seq_id)
    cv2.imwrite(str(tmp_path / "proj" / "photo.png"), np.full((50, 70, 3), 90, np.uint8))
    return tmp_path / "proj", track, ids


def test_strip_follows_frames_and_propagates(qtbot, tmp_path: Path, sequence_project):
    root, track, ids = sequence_project
    window = make_window(qtbot, tmp_path)
    assert window.open_folder(root)
    strip = window.sequence_strip
    window.show_image(window.project.image_by_name("photo.png").id)
    qtbot.waitUntil(lambda: window.controller.image is not None)
    assert not strip.dock.isVisible()  # a plain image: no strip
    window.show_image(ids[0])
    qtbot.waitUntil(lambda: strip.dock.isVisible())
    assert strip.track_id == track and strip.cells.states == [KEY] + [NONE] * 5
    strip.propagate_button.click()
    qtbot.waitUntil(lambda: strip.job is None, timeout=120000)
    assert strip.cells.states == [KEY] + [PROPAGATED] * 5
    assert strip.bar.maximum() == 5 and "5 frames" in strip.last_message
    from seem_annotator.gui.image_list import status_of

    panel = window.images_panel  # the image list's dots follow: propagated frames are in progress
    assert all(status_of(panel._records[i]) == "in_progress" for i in ids[1:])
    strip.slider.setValue(3)  # the slider steps frames
    qtbot.waitUntil(lambda: window.controller.image_id == ids[3])
    assert strip.current == 3 and "frame 4/6" in strip.title.text()
    assert len(window.controller.project.annotations(ids[3])) == 1
    strip.cells.clicked.emit(1)
    qtbot.waitUntil(lambda: window.controller.image_id == ids[1])


def test_cancel_stops_a_run(qtbot, tmp_path: Path, sequence_project):
    root, track, ids = sequence_project
    window = make_window(qtbot, tmp_path)
    assert window.open_folder(root)
    strip = window.sequence_strip
    window.show_image(ids[0])
    qtbot.waitUntil(lambda: strip.dock.isVisible())
    strip.propagate_button.click()
    assert strip.cancel_button.isEnabled() and not strip.propagate_button.isEnabled()
    strip.cancel_button.click()
    qtbot.waitUntil(lambda: strip.job is None, timeout=120000)
    assert "cancelled" in strip.last_message
    assert strip.cells.states.count(PROPAGATED) < 5


def test_new_track_from_selection_and_propagate_from_a_correction(qtbot, tmp_path: Path, sequence_project):
    from seem_annotator.core import masks

    root, track, ids = sequence_project
    window = make_window(qtbot, tmp_path)
    assert window.open_folder(root)
    strip = window.sequence_strip
    project = window.project
    # An object accepted on frame 2 (any prompt made it) becomes a new track from the selection.
    mask = np.zeros((120, 214), bool)
    mask[5:30, 5:60] = True
    session = project.start_session(ids[2])
    project.add_round(session.id, (), "test", masks.encode(mask), [])
    ann = project.accept_session(session.id, project.ensure_label("sky").id)
    window.show_image(ids[2])
    qtbot.waitUntil(lambda: strip.dock.isVisible() and window.controller.image_id == ids[2])
    window.controller.selected = [ann.id]
    strip.new_track.click()
    new = strip.track_id
    assert new != track and strip.cells.states == [NONE, NONE, KEY, NONE, NONE, NONE]
    strip.from_here.setChecked(True)
    strip.propagate_button.click()
    qtbot.waitUntil(lambda: strip.job is None, timeout=120000)
    assert strip.cells.states == [NONE, NONE, KEY, PROPAGATED, PROPAGATED, PROPAGATED]
    strip.tracks.setCurrentIndex(strip.tracks.findData(track))
    assert strip.cells.states == [KEY] + [NONE] * 5  # the other track untouched
