"""File > Import video… / Import frames folder…: a video or a folder of frames becomes a sequence of
the open project, without the command line.

A video is decoded on a background thread (files only: `video.importing.decode_video`) with a
progress dialog and Cancel; the sequence is then recorded in the store on the GUI thread, the
store's one writer, and the window shows its first frame, where the frame strip appears."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QLineEdit,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from seem_annotator.core.project import Project
from seem_annotator.errors import UserError
from seem_annotator.gui.background import BackgroundJob, progress_dialog, show_progress, start_with_dialog
from seem_annotator.gui.dialog_parts import note, ok_cancel, path_row
from seem_annotator.video.importing import (
    SEQUENCES_DIR,
    DecodedVideo,
    VideoTarget,
    decode_video,
    frames_target,
    gather_frames,
    probe_frames,
    register_frames,
    register_video,
    video_target,
)

if TYPE_CHECKING:
    from seem_annotator.gui.main_window import MainWindow

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
VIDEO_FILTER = f"Videos ({' '.join('*' + s for s in VIDEO_SUFFIXES)});;All files (*)"
Done = Callable[[Any, str | None], None]  # (the sequence record or None, an error message or None)


class VideoImportDialog(QDialog):
    """Which video, which of its frames to keep, and the sequence's name."""

    def __init__(self, project_root: Path, parent: QWidget | None = None, settings: QSettings | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import video")
        self.setMinimumWidth(560)
        self.settings = settings or QSettings()
        layout = QVBoxLayout(self)
        form = QFormLayout()
        row, self.path = path_row(self, self._browse)
        self.path.setPlaceholderText("a video file")
        form.addRow("Video", row)
        self.every = QSpinBox(self)
        self.every.setRange(1, 1000)
        self.every.setValue(int(self.settings.value("video_import/every", 1)))
        self.every.setToolTip("1 keeps every frame; 5 keeps frames 0, 5, 10, …")
        form.addRow("Keep every Nth frame", self.every)
        self.name = QLineEdit(self)
        self.name.setPlaceholderText("the file's name")
        form.addRow("Sequence name", self.name)
        layout.addLayout(form)
        layout.addWidget(note(self, f"The kept frames are written once, as JPEG files, into "
                                    f"{project_root / SEQUENCES_DIR}/<name>/ and become images of this project; the "
                                    "video itself is not read again."))
        self.buttons = ok_cancel(self, "Import")
        layout.addWidget(self.buttons)
        self.path.textChanged.connect(self._check)
        self._check()

    def _browse(self) -> None:
        start = str(self.settings.value("video_import/folder", str(Path.home())))
        path, _ = QFileDialog.getOpenFileName(self, "Choose a video", start, VIDEO_FILTER)
        if path:
            self.path.setText(path)

    def _check(self) -> None:
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(self.video().is_file())

    def video(self) -> Path:
        return Path(self.path.text().strip()).expanduser()

    def remember(self) -> None:
        self.settings.setValue("video_import/every", self.every.value())
        self.settings.setValue("video_import/folder", str(self.video().parent))


def video_decode_job(project: Project, target: VideoTarget, every: int) -> BackgroundJob:
    """Decoding `target`'s video and reading its frames back (files only), cancellable between
    frames; finishes with (DecodedVideo, scans of the frames). A crash keeps nothing."""

    def work(job: BackgroundJob) -> tuple[DecodedVideo, list]:
        decoded = decode_video(target.source, target.folder, every, progress=job.report,
                               cancelled=lambda: job.cancelled)
        return decoded, probe_frames(project, decoded)

    def crash(exc: Exception) -> str:
        shutil.rmtree(target.folder, ignore_errors=True)
        return f"Importing {target.source.name} failed: {type(exc).__name__}: {exc}"

    return BackgroundJob(f"import-{target.name}", work, crash)


def import_video_interactive(window: MainWindow) -> None:
    if window.project is None:  # no project to import into: open the video as its own project
        start = str(window.settings.value("video_import/folder", str(Path.home())))
        path, _ = QFileDialog.getOpenFileName(window, "Open a video", start, VIDEO_FILTER)
        if path:
            window.settings.setValue("video_import/folder", str(Path(path).parent))
            open_video(window, path)
        return
    dialog = VideoImportDialog(window.project.root, window, window.settings)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return
    dialog.remember()
    import_video_to(window, dialog.video(), dialog.every.value(), dialog.name.text().strip() or None)


def import_video_to(window: MainWindow, path: str | Path, every: int = 1, name: str | None = None,
                    on_done: Done | None = None) -> BackgroundJob | None:
    """Decode `path` into the open project in the background, then record it and show its first
    frame. `on_done(record, error)` is called on the GUI thread when given (tests)."""
    project = window.project
    if project is None:
        return None
    try:
        target = video_target(project, Path(path), name)
    except UserError as exc:
        window.show_error(str(exc), modal=True)
        return None
    dialog = progress_dialog(window, "Import video", f"Decoding {target.source.name}…", "Cancel")
    job = video_decode_job(project, target, every)

    def progress(done: int, total: int, _text: str) -> None:
        if not job.cancelled:
            show_progress(dialog, done, total,
                          f"Decoding {target.source.name}: frame {done}" + (f" of {total}" if total else ""))

    def finished(result: tuple[DecodedVideo, list]) -> None:
        decoded, scans = result
        if window.project is not project:  # the project was closed meanwhile: keep nothing of it
            shutil.rmtree(target.folder, ignore_errors=True)
            return
        try:
            record = register_video(project, target, decoded, every, scans=scans)
        except UserError as exc:
            window.show_error(str(exc), modal=True)
            if on_done is not None:
                on_done(None, str(exc))
            return
        show_sequence(window, record)
        kept = f"Imported {len(decoded.files)} frames of {target.source.name} as sequence {record.name}."
        if decoded.truncated:
            window.show_error(f"{kept} The video stopped early: {decoded.error}; the frames decoded so far are kept.",
                              modal=True)
        else:
            window.status.message(kept)
        if on_done is not None:
            on_done(record, None)

    return start_with_dialog(window, job, dialog, progress, finished, on_done)


def import_frames_interactive(window: MainWindow) -> None:
    if window.project is None:
        window.show_error("Open a folder first: the frames become images of its project.", modal=True)
        return
    folder = QFileDialog.getExistingDirectory(window, "Choose a folder of frames",
                                              str(window.settings.value("video_import/folder", str(Path.home()))))
    if folder:
        import_frames_to(window, Path(folder))


def import_frames_to(window: MainWindow, folder: Path, name: str | None = None,
                    on_done: Done | None = None) -> BackgroundJob | None:
    """A folder of frames as a sequence of the open project (copied in unless it lies inside it):
    copied and read on a background thread with progress and Cancel, then recorded and its first
    frame shown. `on_done(record, error)` is called on the GUI thread when given (tests)."""
    project = window.project
    if project is None:
        return None
    try:
        target = frames_target(project, Path(folder), name)
    except UserError as exc:
        window.show_error(str(exc), modal=True)
        return None
    dialog = progress_dialog(window, "Import frames", f"Reading the frames of {target.source.name}…", "Cancel")
    job = BackgroundJob(f"import-{target.name}",
                        lambda job: gather_frames(project, target, job.report, lambda: job.cancelled),
                        lambda exc: f"Importing the frames of {target.source.name} failed: {type(exc).__name__}: {exc}")

    def progress(done: int, total: int, _text: str) -> None:
        if not job.cancelled:
            show_progress(dialog, done, total, f"{target.source.name}: {done} of {total}"
                          + (" (copies, then reads)" if target.copy_to is not None else " frames read"))

    def finished(result: tuple[list[Path], list]) -> None:
        if window.project is not project:  # the project was closed meanwhile: keep nothing of it
            if target.copy_to is not None:
                shutil.rmtree(target.copy_to, ignore_errors=True)
            return
        record = register_frames(project, target, *result)
        show_sequence(window, record)
        window.status.message(f"Imported {record.frame_count} frames of {target.source.name} as sequence "
                              f"{record.name}.")
        if on_done is not None:
            on_done(record, None)

    return start_with_dialog(window, job, dialog, progress, finished, on_done)  # a failed read left no copy


def show_sequence(window: MainWindow, record: Any) -> None:
    """Refresh the image list with a new sequence's frames and open its first frame."""
    project = window.project
    window.images_panel.set_images(project.images(), project.root)
    frames = project.sequences.frames(record.id)
    if frames:
        window.show_image(frames[0].image_id)


def is_video(path: str | Path) -> bool:
    return Path(path).is_file() and Path(path).suffix.lower() in VIDEO_SUFFIXES


def video_project_folder(video: Path) -> Path:
    """Where opening a video keeps its project: a folder named after it, beside it."""
    return video.parent / video.stem


def open_video(window: MainWindow, video: str | Path, on_done: Done | None = None) -> bool:
    """Open a video as a person expects from `seem-annotator gui clip.mp4`: its project is the folder
    `clip/` beside it (made when missing); the video is imported there the first time, and reopened
    as it was after that."""
    video = Path(video).expanduser().resolve()
    folder = video_project_folder(video)
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        window.show_error(f"Cannot make the project folder {folder} beside the video ({exc.strerror}); open a "
                          "writable folder and use File > Import video.", modal=True)
        return False
    if not window.open_folder(folder):
        return False
    if any(record.source == str(video) for record in window.project.sequences.all()):
        if on_done is not None:
            on_done(None, None)
        return True
    return import_video_to(window, video, on_done=on_done) is not None
