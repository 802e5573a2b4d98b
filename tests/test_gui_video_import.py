"""File > Import video… and Import frames folder… in the real window: the video is decoded in the
background, recorded as a sequence, and the window opens its first frame with the frame strip
(found under Xvfb: a person could only bring a video in from the command line)."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from conftest import copy_samples
from PySide6.QtCore import Qt
from test_gui_workflow import make_window

from seem_annotator.gui.video_import import import_frames_to, import_video_to, video_decode_job
from seem_annotator.video.importing import video_target

pytestmark = pytest.mark.timeout(120)


def _write_video(shared_data: Path, path: Path, n: int = 10) -> Path:
    files = sorted((shared_data / "video" / "davis2016_camel" / "frames").glob("*.jpg"))[:n]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (214, 120))
    for f in files:
        writer.write(cv2.resize(cv2.imread(str(f)), (214, 120), interpolation=cv2.INTER_AREA))
    writer.release()
    return path


def test_a_video_imported_from_the_window_opens_on_its_first_frame(qtbot, tmp_path: Path, shared_data: Path) -> None:
    video = _write_video(shared_data, tmp_path / "camel walk.avi")
    window = make_window(qtbot, tmp_path)
    window.open_folder(copy_samples(tmp_path / "samples"))
    photos = len(window.project.images())
    # The frames are recorded from their own scan, made on the decoding thread; the project's folder
    # is not rescanned on the GUI thread (a photo added meanwhile waits for F5).
    copy_samples(tmp_path / "more")
    (tmp_path / "samples" / "late.jpg").write_bytes((tmp_path / "more" / "coffee.jpg").read_bytes())
    assert window.shortcuts.actions["import_video"].text() == "Import video…"
    outcome: list = []
    runner = import_video_to(window, video, every=2, on_done=lambda record, error: outcome.append((record, error)))
    assert runner is not None
    qtbot.waitUntil(lambda: bool(outcome), timeout=30000)
    record, error = outcome[0]
    assert error is None and record.name == "camel walk" and record.frame_count == 5
    frames = window.project.sequences.frames(record.id)
    assert len(window.project.images()) == photos + 5
    assert window.images_panel.list.count() == photos + 5 and window.project.image_by_name("late.jpg") is None
    assert all(window.project.image(f.image_id).readable and window.project.image(f.image_id).width == 214
               for f in frames)
    assert window.controller.image_id == frames[0].image_id
    assert window.sequence_strip.dock.isVisible()
    assert window.sequence_strip.title.text() == "camel walk: frame 1/5"
    # Frames differ at the end of their names: the list elides in the middle, so the end shows.
    assert window.images_panel.list.textElideMode() == Qt.TextElideMode.ElideMiddle
    assert "Imported 5 frames of camel walk.avi" in window.status.full_text()
    # A second import of the same video is a sequence of its own, not a clash.
    outcome.clear()
    import_video_to(window, video, every=5, on_done=lambda record, error: outcome.append((record, error)))
    qtbot.waitUntil(lambda: bool(outcome), timeout=30000)
    assert outcome[0][0].name != "camel walk" and outcome[0][0].frame_count == 2
    window.close()


def test_a_cancelled_or_broken_video_leaves_the_project_as_it_was(qtbot, tmp_path: Path, shared_data: Path) -> None:
    video = _write_video(shared_data, tmp_path / "clip.avi")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    window = make_window(qtbot, tmp_path)
    window.open_folder(copy_samples(tmp_path / "samples"))
    before = [i.file_name for i in window.project.images()]
    target = video_target(window.project, video)
    runner = video_decode_job(window.project, target, every=1)
    failures: list[str] = []
    runner.failed.connect(failures.append)
    runner.cancel()  # before the first frame: it stops after reading one
    runner.start()
    qtbot.waitUntil(lambda: bool(failures), timeout=30000)
    assert "cancelled; nothing was imported" in failures[0]
    assert not target.folder.exists()
    outcome: list = []
    import_video_to(window, broken, on_done=lambda record, error: outcome.append((record, error)))
    qtbot.waitUntil(lambda: bool(outcome), timeout=30000)
    assert outcome[0][0] is None and "cannot be decoded as a video" in outcome[0][1]
    assert "cannot be decoded as a video" in window.status.full_text()
    assert [i.file_name for i in window.project.images()] == before
    assert window.project.sequences.all() == []
    window.close()


def test_a_frames_folder_imported_from_the_window(qtbot, tmp_path: Path, shared_data: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for f in sorted((shared_data / "video" / "davis2016_camel" / "frames").glob("*.jpg"))[:3]:
        (folder / f.name).write_bytes(f.read_bytes())
    window = make_window(qtbot, tmp_path)
    window.open_folder(copy_samples(tmp_path / "samples"))
    before = [i.file_name for i in window.project.images()]
    outcome: list = []
    # A broken frame: one clear error, nothing copied, nothing recorded.
    (folder / "zz_broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    assert import_frames_to(window, folder, on_done=lambda record, error: outcome.append((record, error)))
    qtbot.waitUntil(lambda: bool(outcome), timeout=30000)
    assert outcome[0][0] is None and "cannot be read (zz_broken.jpg)" in outcome[0][1]
    assert [i.file_name for i in window.project.images()] == before
    assert not (window.project.root / "sequences" / "frames").exists()
    (folder / "zz_broken.jpg").unlink()
    outcome.clear()
    job = import_frames_to(window, folder, on_done=lambda record, error: outcome.append((record, error)))
    assert job is not None  # copied and read off the GUI thread
    qtbot.waitUntil(lambda: bool(outcome), timeout=30000)
    record = outcome[0][0]
    assert record is not None and record.frame_count == 3
    assert window.controller.image_id == window.project.sequences.frames(record.id)[0].image_id
    assert window.sequence_strip.title.text() == "frames: frame 1/3"
    assert "Imported 3 frames of frames as sequence frames" in window.status.full_text()
    assert import_frames_to(window, tmp_path / "missing") is None
    assert "is not a folder of frames" in window.status.full_text()
    window.close()


def test_opening_a_video_makes_its_project_beside_it_once(qtbot, tmp_path: Path, shared_data: Path) -> None:
    from seem_annotator.gui.video_import import is_video, open_video

    video = _write_video(shared_data, tmp_path / "walk.avi", n=4)
    assert is_video(video) and not is_video(tmp_path) and not is_video(tmp_path / "walk.txt")
    window = make_window(qtbot, tmp_path)
    outcome: list = []
    assert open_video(window, video, on_done=lambda record, error: outcome.append((record, error)))
    qtbot.waitUntil(lambda: bool(outcome), timeout=30000)
    assert window.project.root == (tmp_path / "walk").resolve()
    assert outcome[0][0].frame_count == 4 and window.sequence_strip.title.text() == "walk: frame 1/4"
    # Opened again: the same project, the video not imported a second time.
    outcome.clear()
    assert open_video(window, video, on_done=lambda record, error: outcome.append((record, error)))
    assert outcome == [(None, None)] and len(window.project.sequences.all()) == 1
    window.close()


def _drop(window, path: Path) -> None:
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    window.dropEvent(QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                Qt.KeyboardModifier.NoModifier))


def test_a_video_dropped_on_the_window_opens_or_joins_the_project(qtbot, tmp_path: Path, shared_data: Path) -> None:
    video = _write_video(shared_data, tmp_path / "run.avi", n=3)
    window = make_window(qtbot, tmp_path)
    _drop(window, video)  # nothing open: the video's own project beside it
    qtbot.waitUntil(lambda: window.project is not None and len(window.project.sequences.all()) == 1, timeout=30000)
    assert window.project.root == (tmp_path / "run").resolve()
    window.open_folder(copy_samples(tmp_path / "samples"))
    _drop(window, video)  # a project open: imported into it
    qtbot.waitUntil(lambda: len(window.project.sequences.all()) == 1, timeout=30000)
    assert window.project.root == (tmp_path / "samples").resolve()
    window.close()
