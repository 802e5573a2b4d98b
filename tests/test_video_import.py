"""Videos and frame folders imported as sequences: decoded once into frames, natural order,
truncated and non-video files, sequences next to plain images."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from seem_annotator.cli.main import main
from seem_annotator.core.project import Project
from seem_annotator.core.sequences import natural_key
from seem_annotator.errors import UserError
from seem_annotator.video.importing import decode_video, register_video, video_target

DAVIS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "video" / "davis2016_camel" / "frames"


def _davis_frames(n: int) -> list[np.ndarray]:
    if not DAVIS.is_dir():
        pytest.skip(f"DAVIS frames not found at {DAVIS}")
    files = sorted(DAVIS.glob("*.jpg"))[:n]
    return [cv2.resize(cv2.imread(str(f)), (214, 120), interpolation=cv2.INTER_AREA) for f in files]


def _write_video(path: Path, n: int = 10, fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (214, 120))
    assert writer.isOpened()
    for frame in _davis_frames(n):
        writer.write(frame)
    writer.release()
    return path


def _project_with_photo(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    cv2.imwrite(str(root / "photo.png"), np.full((40, 60, 3), 128, np.uint8))
    Project.create(root).close()
    return root


def test_import_video_decodes_once_into_frames_with_timestamps(tmp_path: Path, capsys):
    video = _write_video(tmp_path / "clip.avi", n=10)
    root = _project_with_photo(tmp_path)
    assert main(["import", "video", str(video), "--project", str(root), "--every", "3", "--quality", "90"]) == 0
    assert "10" not in capsys.readouterr().err  # no warning for a complete video
    with Project.open(root) as project:
        (seq,) = project.sequences.all()
        frames = project.sequences.frames(seq.id)
        assert seq.name == "clip" and not seq.truncated and seq.frame_count == 4
        assert [f.index for f in frames] == [0, 1, 2, 3]
        assert [f.timestamp for f in frames] == pytest.approx([0.0, 0.3, 0.6, 0.9])
        assert seq.extra["source_frames"] == [0, 3, 6, 9]
        assert all((root / f.file_name).is_file() and f.file_name.startswith("sequences/clip/") for f in frames)
        # Sequences and plain images live side by side; frames are ordinary, readable images.
        names = [i.file_name for i in project.images()]
        assert "photo.png" in names and len(names) == 5
        assert all(project.image(f.image_id).readable and project.image(f.image_id).width == 214 for f in frames)
        assert project.sequences.of_image(project.image_by_name("photo.png").id) is None


def test_import_video_fps_and_png(tmp_path: Path):
    video = _write_video(tmp_path / "clip.avi", n=10, fps=10.0)
    root = _project_with_photo(tmp_path)
    assert main(["import", "video", str(video), "--project", str(root), "--fps", "5", "--format", "png"]) == 0
    with Project.open(root) as project:
        (seq,) = project.sequences.all()
        frames = project.sequences.frames(seq.id)
        assert len(frames) == 5 and all(f.file_name.endswith(".png") for f in frames)
        assert seq.fps == 5.0


def test_truncated_video_keeps_decoded_frames_marked(tmp_path: Path, capsys):
    video = _write_video(tmp_path / "clip.avi", n=12)
    data = video.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.55)])
    root = tmp_path / "new-project"  # created by the import
    assert main(["import", "video", str(cut), "--project", str(root)]) == 0
    err = capsys.readouterr().err
    assert "truncated" in err and "kept the" in err
    with Project.open(root) as project:
        (seq,) = project.sequences.all()
        assert seq.truncated and "stopped at frame" in seq.error
        assert 0 < seq.frame_count < 12


def test_non_video_file_is_one_clear_error(tmp_path: Path, capsys):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 50)
    root = _project_with_photo(tmp_path)
    assert main(["import", "video", str(fake), "--project", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len([line for line in err if line.startswith("seem-annotator: error:")]) == 1
    assert "cannot be decoded" in err[-1]
    with Project.open(root) as project:
        assert project.sequences.all() == []
    assert not (root / "sequences" / "notes").exists()


def test_natural_sort_key():
    names = ["frame10.jpg", "frame2.jpg", "frame1.jpg", "Frame3.jpg"]
    assert sorted(names, key=natural_key) == ["frame1.jpg", "frame2.jpg", "Frame3.jpg", "frame10.jpg"]


def test_import_frames_sorted_naturally_and_copied_in(tmp_path: Path):
    src = tmp_path / "shots"
    src.mkdir()
    frames = _davis_frames(3)
    for name, frame in zip(["frame10.jpg", "frame2.jpg", "frame1.jpg"], frames):
        cv2.imwrite(str(src / name), frame)
    (src / "readme.txt").write_text("not a frame")
    root = _project_with_photo(tmp_path)
    assert main(["import", "frames", str(src), "--project", str(root), "--fps", "25"]) == 0
    with Project.open(root) as project:
        (seq,) = project.sequences.all()
        got = [Path(f.file_name).name for f in project.sequences.frames(seq.id)]
        assert got == ["frame1.jpg", "frame2.jpg", "frame10.jpg"]
        assert [f.timestamp for f in project.sequences.frames(seq.id)] == pytest.approx([0.0, 0.04, 0.08])
        # A folder already inside the project is used in place (same images, no copy).
        inside = root / "clips" / "b"
        shutil.copytree(src, inside)
        n_images = len(project.images())
    assert main(["import", "frames", str(inside), "--project", str(root)]) == 0
    with Project.open(root) as project:
        second = project.sequences.by_name("b")
        assert project.sequences.frames(second.id)[0].file_name == "clips/b/frame1.jpg"
        assert len(project.images()) == n_images + 3


def test_frames_of_one_sequence_cannot_join_another(tmp_path: Path):
    src = tmp_path / "shots"
    src.mkdir()
    for i, frame in enumerate(_davis_frames(2)):
        cv2.imwrite(str(src / f"{i}.jpg"), frame)
    root = _project_with_photo(tmp_path)
    shutil.copytree(src, root / "a")
    assert main(["import", "frames", str(root / "a"), "--project", str(root)]) == 0
    assert main(["import", "frames", str(root / "a"), "--project", str(root), "--name", "again"]) == 2


def test_decoding_reports_progress_and_a_cancel_keeps_nothing(tmp_path: Path):
    video = _write_video(tmp_path / "clip.avi", n=10)
    root = _project_with_photo(tmp_path)
    with Project.open(root) as project:
        target = video_target(project, video)
        seen: list[tuple[int, int | None]] = []
        with pytest.raises(UserError, match="cancelled; nothing was imported"):
            decode_video(video, target.folder, every=2, progress=lambda n, total: seen.append((n, total)),
                         cancelled=lambda: len(seen) >= 4)
        assert seen == [(1, 10), (2, 10), (3, 10), (4, 10)]
        assert not target.folder.exists() and project.sequences.all() == []
        # Decoding apart from recording (the app decodes on a thread, records on the store's).
        decoded = decode_video(video, target.folder, every=2, progress=lambda n, total: seen.append((n, total)))
        assert seen[-1] == (10, 10) and len(decoded.files) == 5
        record = register_video(project, target, decoded, every=2)
        assert record.name == "clip" and record.frame_count == 5
        assert len(project.sequences.frames(record.id)) == 5


def test_a_read_only_images_folder_is_one_clear_error_before_decoding(tmp_path: Path, monkeypatch):
    from seem_annotator.video import importing

    video = _write_video(tmp_path / "clip.avi", n=2)
    root = _project_with_photo(tmp_path)
    with Project.open(root) as project:
        # CI runs as root, for whom every folder is writable: the permission answer is faked.
        monkeypatch.setattr(importing.os, "access", lambda path, mode: False)
        with pytest.raises(UserError, match="read-only"):
            video_target(project, video)
        assert not (root / "sequences").exists()


def test_gathering_frames_reports_progress_and_a_bad_frame_or_a_cancel_keeps_nothing(tmp_path: Path):
    from seem_annotator.video.importing import frames_target, gather_frames, register_frames

    src = tmp_path / "shots"
    src.mkdir()
    for i, frame in enumerate(_davis_frames(3)):
        cv2.imwrite(str(src / f"f{i}.jpg"), frame)
    (src / "f3.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    root = _project_with_photo(tmp_path)
    with Project.open(root) as project:
        before = [i.file_name for i in project.images()]
        target = frames_target(project, src)
        assert target.copy_to is not None and target.name == "shots" and len(target.files) == 4
        with pytest.raises(UserError, match=r"1 frame\(s\) in .*shots cannot be read \(f3.jpg\)"):
            gather_frames(project, target)
        assert not target.copy_to.exists()  # the copies went with the error
        (src / "f3.jpg").unlink()
        target = frames_target(project, src)
        with pytest.raises(UserError, match="cancelled; nothing was kept"):
            gather_frames(project, target, cancelled=lambda: True)
        assert not target.copy_to.exists()
        steps: list[tuple[int, int]] = []
        files, scans = gather_frames(project, target, progress=lambda done, total: steps.append((done, total)))
        assert steps == [(k, 6) for k in range(1, 7)]  # three copies, three reads
        assert [i.file_name for i in project.images()] == before  # nothing recorded off the store's thread
        record = register_frames(project, target, files, scans)
        assert record.frame_count == 3 and len(project.images()) == len(before) + 3
        assert all(project.image_by_name(s.file_name).readable for s in scans)
