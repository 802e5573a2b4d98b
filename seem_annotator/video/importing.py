"""Bringing videos and frame folders into a project as sequences.

A video is decoded once (OpenCV's FFmpeg build) and every kept frame is written as an image file
in `<images root>/sequences/<name>/`; from then on frames are plain images, so nothing decodes the
video again. A video that stops decoding part-way keeps the frames decoded so far and its sequence
is marked truncated with the reason.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from seem_annotator.core import images as imgio
from seem_annotator.core.images import SUPPORTED_EXTENSIONS
from seem_annotator.core.project import Project
from seem_annotator.core.sequences import SequenceRecord, natural_key
from seem_annotator.errors import UserError

SEQUENCES_DIR = "sequences"
FORMATS = ("jpg", "png")


@dataclass
class DecodedVideo:
    """What decoding wrote: file paths with timestamps (seconds), source frame indices, and why
    decoding stopped early (None when it reached the end)."""

    files: list[tuple[Path, float | None]] = field(default_factory=list)
    source_indices: list[int] = field(default_factory=list)
    fps: float | None = None
    frame_count: int | None = None
    error: str | None = None

    @property
    def truncated(self) -> bool:
        return self.error is not None


def decode_video(path: Path, out_dir: Path, every: int = 1, fps: float | None = None, fmt: str = "jpg",
                 quality: int = 95, progress: Callable[[int, int | None], None] | None = None,
                 cancelled: Callable[[], bool] | None = None) -> DecodedVideo:
    """Decode `path` once, writing kept frames to `out_dir` (every `every`-th frame, or about
    `fps` frames per second). Raises UserError when not a single frame decodes, or when
    `cancelled()` turns true (then nothing is kept). `progress(frames read, frames in the header
    or None)` is called after each frame read."""
    if fmt not in FORMATS:
        raise UserError(f"Unknown frame format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if every < 1:
        raise UserError("--every must be 1 or more.")
    if fps is not None and fps <= 0:
        raise UserError("--fps must be above 0.")
    if not 0 <= quality <= 100:
        raise UserError("--quality must be between 0 and 100.")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise UserError(f"{path} cannot be decoded as a video (not a video file, damaged, or an unsupported "
                        "codec); nothing was imported.")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    result = DecodedVideo()
    src_fps = cap.get(cv2.CAP_PROP_FPS)
    result.fps = float(src_fps) if src_fps and src_fps > 0 else None
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    result.frame_count = count if count > 0 else None
    out_dir.mkdir(parents=True, exist_ok=True)
    index, next_time = 0, 0.0
    try:
        while True:
            try:
                ok, frame = cap.read()
            except cv2.error as exc:
                result.error = f"the decoder failed at frame {index} ({exc})"
                break
            if not ok or frame is None:
                if result.frame_count is not None and index < result.frame_count:
                    result.error = (f"decoding stopped at frame {index} of the {result.frame_count} its header "
                                    "announces (the file is truncated or damaged)")
                break
            stamp = index / result.fps if result.fps else cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            keep = index % every == 0 if fps is None else stamp + 1e-9 >= next_time
            if keep:
                if fps is not None:
                    next_time += 1.0 / fps
                target = out_dir / f"frame_{index:06d}.{fmt}"
                if not cv2.imwrite(str(target), frame, params):
                    raise UserError(f"Could not write {target}; check the project folder is writable.")
                result.files.append((target, round(stamp, 6)))
                result.source_indices.append(index)
            index += 1
            if progress is not None:
                progress(index, result.frame_count)
            if cancelled is not None and cancelled():
                shutil.rmtree(out_dir, ignore_errors=True)
                raise UserError(f"Import of {path.name} cancelled; nothing was imported.")
    finally:
        cap.release()
    if not result.files:
        shutil.rmtree(out_dir, ignore_errors=True)
        why = f" ({result.error})" if result.error else ""
        raise UserError(f"{path} contains no decodable video frame{why}; nothing was imported.")
    return result


def frame_files(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted naturally (frame2 before frame10)."""
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder of frames.")
    files = [p for p in folder.iterdir()
             if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SUPPORTED_EXTENSIONS]
    if not files:
        raise UserError(f"{folder} holds no image files ({', '.join(sorted(SUPPORTED_EXTENSIONS))}).")
    return sorted(files, key=lambda p: natural_key(p.name))


def _target_folder(project: Project, name: str) -> Path:
    folder = project.root / SEQUENCES_DIR / name
    n = 1
    while folder.exists():
        n += 1
        folder = project.root / SEQUENCES_DIR / f"{name}-{n}"
    return folder


def _relative(project: Project, path: Path) -> str:
    return Path(os.path.relpath(path.resolve(), project.root.resolve())).as_posix()


def import_video(project: Project, path: Path, name: str | None = None, every: int = 1, fps: float | None = None,
                 fmt: str = "jpg", quality: int = 95) -> tuple[SequenceRecord, DecodedVideo]:
    """Decode a video into the project as a new sequence (see `decode_video`); a UserError when the
    images folder is read-only."""
    target = video_target(project, path, name)
    decoded = decode_video(Path(path), target.folder, every, fps, fmt, quality)
    return register_video(project, target, decoded, every, fps), decoded


@dataclass(frozen=True)
class VideoTarget:
    """Where a video's frames go: its sequence's name and folder (neither taken yet)."""

    source: Path
    name: str
    folder: Path


def video_target(project: Project, path: Path, name: str | None = None) -> VideoTarget:
    """The sequence name and folder a video will be decoded into. Decoding (slow, files only) can
    then run on another thread, and `register_video` records the sequence in the store on the
    store's own thread."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist or is not a file.")
    if not os.access(project.root, os.W_OK | os.X_OK):
        raise UserError(f"The project's images folder {project.root} is read-only: a video's frames are written "
                        "there. Open a writable folder, or copy the images to one.")
    seq_name = project.sequences.unique_name(name or path.stem)
    return VideoTarget(path, seq_name, _target_folder(project, seq_name))


def probe_frames(project: Project, decoded: DecodedVideo) -> list[imgio.ScannedImage]:
    """The decoded frames read back as a folder scan would (hash, size, readability). File work
    only: it runs on the decoding thread, so that `register_video` need not rescan the project on
    the store's thread."""
    return [imgio.probe(project.root, _relative(project, f)) for f, _stamp in decoded.files]


def register_video(project: Project, target: VideoTarget, decoded: DecodedVideo, every: int = 1,
                   fps: float | None = None, scans: list[imgio.ScannedImage] | None = None) -> SequenceRecord:
    """Record decoded frames as a new sequence of the project: their images from `scans`
    (`probe_frames`), else found by a rescan."""
    if scans is None:
        project.rescan()
    else:
        project.add_scanned(scans)
    frames = [(_relative(project, f), stamp) for f, stamp in decoded.files]
    return project.sequences.add(
        target.name, _relative(project, target.folder), frames, source=str(target.source.resolve()),
        fps=(fps or (decoded.fps / every if decoded.fps else None)), truncated=decoded.truncated,
        error=decoded.error,
        extra={"source_fps": decoded.fps, "source_frames": decoded.source_indices, "every": every})


@dataclass(frozen=True)
class FramesTarget:
    """A folder of frames on its way into a project: its frames in order, the sequence's name, and
    where they are copied (None: they lie inside the project's images root and are used in place)."""

    source: Path
    name: str
    files: list[Path]
    copy_to: Path | None


def frames_target(project: Project, folder: Path, name: str | None = None) -> FramesTarget:
    """What importing `folder` will do (cheap: lists the folder). Copying and reading the frames
    (`gather_frames`, file work only) can then run on another thread, and `register_frames` records
    the sequence on the store's own thread."""
    folder = Path(folder)
    files = frame_files(folder)
    seq_name = project.sequences.unique_name(name or folder.resolve().name)
    root = project.root.resolve()
    if root == folder.resolve() or root in folder.resolve().parents:
        return FramesTarget(folder, seq_name, files, None)
    if not os.access(project.root, os.W_OK | os.X_OK):
        raise UserError(f"The project's images folder {project.root} is read-only: frames from outside it are copied "
                        "there. Open a writable folder, or copy the frames into this one.")
    return FramesTarget(folder, seq_name, files, _target_folder(project, seq_name))


def gather_frames(project: Project, target: FramesTarget, progress: Callable[[int, int], None] | None = None,
                  cancelled: Callable[[], bool] | None = None) -> tuple[list[Path], list[imgio.ScannedImage]]:
    """The frames copied into the project (when they lie outside it) and read back as a folder
    scan would: (their paths, their scans). File work only. Raises UserError when a frame cannot be
    read or `cancelled()` turns true; then no copy is left behind. `progress(done, total)`."""
    files = list(target.files)
    steps = len(files) * (2 if target.copy_to is not None else 1)
    done = 0

    def step() -> None:
        nonlocal done
        if cancelled is not None and cancelled():
            raise UserError(f"Importing the frames of {target.source.name} was cancelled; nothing was kept.")
        done += 1
        if progress is not None:
            progress(done, steps)

    try:
        if target.copy_to is not None:
            target.copy_to.mkdir(parents=True)
            copied = []
            for f in files:
                step()
                shutil.copy2(f, target.copy_to / f.name)
                copied.append(target.copy_to / f.name)
            files = copied
        scans = []
        for f in files:
            step()
            scans.append(imgio.probe(project.root, _relative(project, f)))
        unreadable = [Path(scan.file_name).name for scan in scans if not scan.readable]
        if unreadable:
            raise UserError(f"{len(unreadable)} frame(s) in {target.source} cannot be read ({', '.join(unreadable[:3])}"
                            f"{'...' if len(unreadable) > 3 else ''}); fix or remove them and import again.")
    except BaseException:
        if target.copy_to is not None:
            shutil.rmtree(target.copy_to, ignore_errors=True)
        raise
    return files, scans


def register_frames(project: Project, target: FramesTarget, files: list[Path], scans: list[imgio.ScannedImage],
                    fps: float | None = None) -> SequenceRecord:
    """Record gathered frames (`gather_frames`) as a new sequence of the project."""
    project.add_scanned(scans)
    folder = target.copy_to or target.source
    frames = [(_relative(project, f), None if fps is None else round(i / fps, 6)) for i, f in enumerate(files)]
    return project.sequences.add(target.name, _relative(project, folder), frames, source=str(Path(folder).resolve()),
                                 fps=fps)


def import_frames(project: Project, folder: Path, name: str | None = None,
                  fps: float | None = None) -> SequenceRecord:
    """A folder of frames as a new sequence. Frames inside the project's images root are used in
    place; others are copied into the project (frames must live under the images root)."""
    target = frames_target(project, folder, name)
    files, scans = gather_frames(project, target)
    return register_frames(project, target, files, scans, fps)
