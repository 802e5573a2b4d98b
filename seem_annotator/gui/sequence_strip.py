"""The sequence strip: for the frame being shown, its sequence as a strip of frame cells with a
slider, and for the chosen track which frames are keyframes (made or corrected by a person),
propagated, flagged for review, or lost; plus Propagate / Cancel with progress.

Docked at the bottom; visible only while the current image is a frame of a sequence. It talks to
the project through its Qt-free API (`project.sequences`, `project.tracks`, `video.propagate`)
and to the window only to show a frame and to reload the canvas after a run.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from PySide6.QtCore import QObject, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from seem_annotator.errors import UserError

# Cell states: what the strip draws for the current track on each frame.
NONE, KEY, PROPAGATED, FLAGGED, LOST = "none", "keyframe", "propagated", "flagged", "lost"
_COLORS = {NONE: QColor(70, 70, 70), KEY: QColor(40, 170, 80), PROPAGATED: QColor(80, 140, 220),
           FLAGGED: QColor(235, 150, 30), LOST: QColor(200, 50, 50)}


def cell_states(project: Any, track_id: int | None, frame_ids: list[int]) -> list[str]:
    """The state of each frame (in order) for one track."""
    if track_id is None:
        return [NONE] * len(frame_ids)
    states = project.tracks.frames(track_id)
    out = []
    for image_id in frame_ids:
        s = states.get(image_id)
        if s is None:
            out.append(NONE)
        elif s.is_keyframe:
            out.append(KEY)
        elif s.annotation_id is None:
            out.append(LOST)
        else:
            out.append(FLAGGED if s.flagged else PROPAGATED)
    return out


class FrameCells(QWidget):
    """One coloured cell per frame, the current one outlined; a click chooses a frame."""

    clicked = Signal(int)  # frame index

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.states: list[str] = []
        self.current = -1
        self.setMinimumHeight(18)

    def set_states(self, states: list[str], current: int) -> None:
        self.states, self.current = states, current
        self.update()

    def paintEvent(self, event) -> None:
        if not self.states:
            return
        p = QPainter(self)
        w = self.width() / len(self.states)
        for i, state in enumerate(self.states):
            p.fillRect(QRectF(i * w, 2, max(1.0, w - (1 if w > 4 else 0)), self.height() - 4), _COLORS[state])
        if 0 <= self.current < len(self.states):
            p.setPen(QPen(QColor(255, 255, 255), 2))
            p.drawRect(QRectF(self.current * w, 1, max(2.0, w), self.height() - 2))
        p.end()

    def mousePressEvent(self, event) -> None:
        if self.states:
            index = int(event.position().x() / max(1e-6, self.width() / len(self.states)))
            self.clicked.emit(max(0, min(len(self.states) - 1, index)))


class _Relay(QObject):
    """Carries the propagation thread's progress and end to the GUI thread (queued signals)."""

    progress = Signal(int, int)
    finished = Signal(object)


class SequenceStrip(QWidget):
    """See the module docstring. `window` provides `project`, `show_image`, `model.backend`."""

    frame_chosen = Signal(int)  # image id

    def __init__(self, window: Any) -> None:
        super().__init__(window if isinstance(window, QWidget) else None)
        self.window = window
        self.sequence_id: int | None = None
        self.frame_ids: list[int] = []
        self.current = -1
        self.job: Any = None
        self.relay = _Relay(self)
        self.relay.progress.connect(self._progress)
        self.relay.finished.connect(self._finished)
        self.title = QLabel()
        self.tracks = QComboBox()
        # Wide enough for "track 12: person" (found in the app: "track 1: c" for a camel).
        self.tracks.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.tracks.setMinimumContentsLength(16)
        self.tracks.currentIndexChanged.connect(lambda _i: self.refresh())
        self.new_track = QPushButton("New track from selection")
        self.new_track.setToolTip("Make the selected object on this frame a track (its keyframe)")
        self.new_track.clicked.connect(self.track_from_selection)
        self.backward = QCheckBox("Backward")
        self.from_here = QCheckBox("From this keyframe only")
        self.from_here.setToolTip("After correcting this frame: re-propagate only its own gaps, up to the "
                                  "neighbouring keyframes")
        self.propagate_button = QPushButton("Propagate")
        self.propagate_button.clicked.connect(self.propagate)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.bar = QProgressBar()
        self.bar.setVisible(False)
        self.cells = FrameCells()
        self.cells.clicked.connect(self._choose)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.valueChanged.connect(self._choose)
        top = QHBoxLayout()
        for w in (self.title, self.tracks, self.new_track, self.backward, self.from_here, self.propagate_button, self.cancel_button,
                  self.bar):
            top.addWidget(w)
        top.addStretch(1)
        column = QVBoxLayout(self)
        column.addLayout(top)
        column.addWidget(self.cells)
        column.addWidget(self.slider)

    # -- following the window --------------------------------------------------------------------

    @property
    def project(self) -> Any:
        return getattr(self.window, "project", None)

    def show_image(self, image_id: int | None) -> None:
        """The window now shows `image_id`: show its sequence (or hide when it is not a frame)."""
        try:
            found = None if self.project is None or image_id is None else self.project.sequences.of_image(image_id)
        except sqlite3.OperationalError:  # a project opened read-only before its upgrade has no sequences
            found = None
        dock = getattr(self, "dock", None)
        if found is None:
            self.sequence_id, self.frame_ids, self.current = None, [], -1
            if dock is not None:
                dock.setVisible(False)
            return
        seq, index = found
        if seq.id != self.sequence_id:
            self.sequence_id = seq.id
            self.frame_ids = [f.image_id for f in self.project.sequences.frames(seq.id)]
            self._fill_tracks()
        self.current = index
        self.title.setText(f"{seq.name}{' (truncated)' if seq.truncated else ''}: frame {index + 1}/{len(self.frame_ids)}")
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, len(self.frame_ids) - 1))
        self.slider.setValue(index)
        self.slider.blockSignals(False)
        if dock is not None:
            dock.setVisible(True)
        self.refresh()

    def _fill_tracks(self, select: int | None = None) -> None:
        keep = select if select is not None else self.track_id
        self.tracks.blockSignals(True)
        self.tracks.clear()
        for t in self.project.tracks.of_sequence(self.sequence_id):
            self.tracks.addItem(f"track {t.id}: {self.project.label(t.label_id).name}", t.id)
        if keep is not None and self.tracks.findData(keep) >= 0:
            self.tracks.setCurrentIndex(self.tracks.findData(keep))
        self.tracks.blockSignals(False)

    @property
    def track_id(self) -> int | None:
        data = self.tracks.currentData()
        return None if data is None else int(data)

    def refresh(self) -> None:
        if self.project is None or self.sequence_id is None:
            return
        self.cells.set_states(cell_states(self.project, self.track_id, self.frame_ids), self.current)
        idle = self.job is None
        self.propagate_button.setEnabled(idle and self.track_id is not None)

    def _choose(self, index: int) -> None:
        if 0 <= index < len(self.frame_ids) and index != self.current:
            self.frame_chosen.emit(self.frame_ids[index])

    # -- actions ---------------------------------------------------------------------------------

    def track_from_selection(self) -> None:
        ctl = getattr(self.window, "controller", None)
        selected = list(getattr(ctl, "selected", []) or [])
        if self.project is None or len(selected) != 1:
            self._message("Select one object on this frame to start a track from it.")
            return
        try:
            track = self.project.tracks.start_from_annotation(selected[0])
        except UserError as exc:
            self._message(str(exc))
            return
        self._fill_tracks(select=track.id)
        self.refresh()

    def propagate(self) -> None:
        from seem_annotator.video.propagate import PropagationSettings, Propagator

        if self.project is None or self.track_id is None or self.job is not None:
            return
        backend = getattr(getattr(self.window, "model", None), "backend", None)
        if backend is None:
            from seem_annotator.engine.backends import create_backend

            backend = create_backend("classical")
        settings = PropagationSettings(forward=True, backward=self.backward.isChecked())
        start = self.current if self.from_here.isChecked() else None
        try:
            self.job = Propagator(self.project, backend, settings).start(
                [self.track_id], from_keyframe=start, progress=lambda d, t: self.relay.progress.emit(d, t))
        except UserError as exc:
            self._message(str(exc))
            return
        self.bar.setVisible(True)
        self.bar.setValue(0)
        self.cancel_button.setEnabled(True)
        self.propagate_button.setEnabled(False)
        self._poll = QTimer(self)
        self._poll.timeout.connect(self._check_done)
        self._poll.start(100)

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def shutdown(self) -> None:
        """Stop a run and wait for it (before the project closes under it)."""
        if self.job is not None:
            self.job.cancel()
            try:
                self.job.result(60)
            except Exception:  # noqa: BLE001 - it is being thrown away with the project
                pass
            self._poll.stop()
            self.job = None
        self.sequence_id, self.frame_ids = None, []

    def _check_done(self) -> None:
        if self.job is not None and self.job.done():
            self._poll.stop()
            try:
                report = self.job.result()
            except Exception as exc:  # a failed run says so and leaves the committed frames
                report = exc
            self.relay.finished.emit(report)

    def _progress(self, done: int, total: int) -> None:
        self.bar.setRange(0, max(1, total))
        self.bar.setValue(done)
        self.refresh()

    def _finished(self, report: Any) -> None:
        self.job = None
        self.bar.setVisible(False)
        self.cancel_button.setEnabled(False)
        if isinstance(report, Exception):
            self._message(f"Propagation stopped: {report}")
        else:
            self._message("; ".join(report.lines()[-2:]))
        ctl = getattr(self.window, "controller", None)
        if ctl is not None:
            ctl.reload()  # the frame shown may have a new propagated mask
        project, panel = getattr(self.window, "project", None), getattr(self.window, "images_panel", None)
        if project is not None and panel is not None:
            for image in project.images():  # propagated frames are in progress now: their dots say so
                panel.update_image(image)
        self.refresh()

    def _message(self, text: str) -> None:
        status = getattr(self.window, "status", None)
        if status is not None and hasattr(status, "message"):
            status.message(text)
        self.last_message = text


def install_sequence_strip(window: Any) -> SequenceStrip:
    """Dock the strip at the bottom of `window` (hidden until a frame is shown)."""
    strip = SequenceStrip(window)
    if isinstance(window, QMainWindow):
        dock = QDockWidget("Sequence", window)
        dock.setObjectName("dock_sequence")
        dock.setWidget(strip)
        window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        dock.setVisible(False)
        strip.dock = dock
    strip.frame_chosen.connect(window.show_image)
    return strip
