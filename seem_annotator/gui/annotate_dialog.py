"""The auto-annotation dialog: choose modes, labels, threshold and images, then run the same
pipeline as `seem-annotator annotate` (annotate.run) on a background thread with a progress bar,
images/s, ETA and cancel. The window stays usable meanwhile; the run merges each image through the
project's store (its one writer, shared with the window and serialised by it). Running the same
settings again resumes an interrupted run: images already merged are skipped."""

from __future__ import annotations

import threading
import time
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from seem_annotator.annotate.settings import MODES, RunSettings
from seem_annotator.errors import CheckpointError, UserError
from seem_annotator.gui import model_download
from seem_annotator.model import hub
from seem_annotator.model.config import resolve_model_name

IMAGE_CHOICES = (("all", "All images"), ("current", "The current image"), ("not_done", "Images not marked done"))


def gui_checkpoint_message(model: str, checkpoint: str | None, exc: Exception) -> str:
    """The CLI's "no checkpoint" line names command-line options; the dialog names its own fields."""
    if checkpoint:
        return f"The checkpoint {checkpoint} cannot be used with {model}: {exc}"
    info = resolve_model_name(model)
    if info is not None and hub.checkpoint_path(info).is_file():  # here, but broken (a cut-off download)
        return (f"The downloaded weights of {info.name} ({hub.checkpoint_path(info)}) cannot be used: {exc}. Delete "
                "the file and download them again, or choose a checkpoint file above.")
    released = model if "/" not in model and not model.endswith((".yaml", ".yml")) else "focalt_v1"
    return (f"Auto-annotation needs SEEM weights for {model} (there is no classical auto-annotation): "
            "choose the checkpoint file above, or download the released weights once with "
            f"'seem-annotator models download {released}'.")


class RunSignals(QObject):
    """Crosses from the run's thread to the GUI thread (queued)."""

    progress = Signal(int, int)
    finished = Signal(object)  # RunSummary
    failed = Signal(str)


class AnnotateDialog(QDialog):
    """Non-modal: start, watch, cancel; resuming is running the same settings again."""

    def __init__(self, window: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent or window)
        self.window = window
        self.setWindowTitle("Auto-annotate with SEEM")
        self.setModal(False)
        self.signals = RunSignals(self)
        self.signals.progress.connect(self._progress)
        self.signals.finished.connect(self._finished)
        self.signals.failed.connect(self._failed)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._started = 0.0
        self.summary: Any = None
        self.error: str | None = None

        form = QFormLayout()
        self.model = QComboBox(self)
        self.model.setEditable(True)  # a released name or a config YAML path
        from seem_annotator.gui.model_control import known_model_names

        self.model.addItems(known_model_names())
        current = window.model.backend_name
        if current.startswith("seem:"):
            self.model.setCurrentText(current.split(":", 1)[1])
        form.addRow("Model", self.model)
        row = QHBoxLayout()
        self.checkpoint = QLineEdit(self)
        self.checkpoint.setPlaceholderText("cached / downloaded weights of the model (or choose a file)")
        browse = QPushButton("…", self)
        browse.clicked.connect(self._browse)
        row.addWidget(self.checkpoint, 1)
        row.addWidget(browse)
        form.addRow("Checkpoint", row)
        self.modes = {m: QCheckBox(m, self) for m in MODES}
        self.modes["everything"].setChecked(True)
        row = QHBoxLayout()
        for box in self.modes.values():
            row.addWidget(box)
        form.addRow("Modes", row)
        self.labels = QLineEdit(", ".join(label.name for label in window.project.labels()), self)
        self.labels.setToolTip("Label list that names the proposals (comma separated); empty = the project's")
        form.addRow("Labels", self.labels)
        self.labels_only = QCheckBox("keep only segments with one of these labels", self)
        form.addRow("", self.labels_only)
        self.threshold = QDoubleSpinBox(self)
        self.threshold.setRange(0.0, 1.0)
        self.threshold.setSingleStep(0.05)
        self.threshold.setValue(RunSettings().threshold)
        form.addRow("Min score (text, exemplar)", self.threshold)
        self.images = QComboBox(self)
        for key, text in IMAGE_CHOICES:
            self.images.addItem(text, key)
        form.addRow("Images", self.images)

        self.message = QLabel("", self)
        self.message.setWordWrap(True)
        self.message.setObjectName("annotate_message")
        # Room for a few lines from the start: a message appearing must not move the form's fields.
        self.message.setMinimumHeight(5 * self.message.fontMetrics().lineSpacing())
        self.message.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.setMinimumWidth(520)
        self.bar = QProgressBar(self)  # always shown: widgets appearing would move the buttons
        self.bar.setValue(0)
        self.rate = QLabel("", self)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start", self)
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel run", self)
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        close = QPushButton("Close", self)
        close.clicked.connect(self.close)
        for b in (self.start_button, self.cancel_button, close):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addWidget(self.bar)
        layout.addWidget(self.rate)
        layout.addLayout(buttons)

    # ------------------------------------------------------------------ choices
    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "SEEM checkpoint", "", "Checkpoints (*.pt *.pth *.bin);;All (*)")
        if path:
            self.checkpoint.setText(path)

    def settings(self) -> RunSettings:
        labels = tuple(n.strip() for n in self.labels.text().split(",") if n.strip())
        return RunSettings(modes=tuple(m for m, box in self.modes.items() if box.isChecked()), labels=labels,
                           threshold=float(self.threshold.value()), labels_only=self.labels_only.isChecked())

    def chosen_images(self) -> list[Any] | None:
        project, ctl = self.window.project, self.window.controller
        choice = self.images.currentData()
        if choice == "current":
            return [project.image(ctl.image_id)] if ctl is not None and ctl.image_id is not None else []
        if choice == "not_done":
            states = project.review_states()
            return [im for im in project.images() if states.get(im.id) != "done"]
        return None

    # ------------------------------------------------------------------ running
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> bool:
        """Run on a background thread (resolving and hashing the checkpoint included: a large file
        takes seconds); False, with the reason shown, when the settings cannot give a run. Problems
        found on the thread (no checkpoint, a mismatch) arrive as a message."""
        if self.running:
            return False
        from seem_annotator.annotate import run as runner
        from seem_annotator.annotate.executor import make_executor
        from seem_annotator.engine.backends import resolve_device

        project = self.window.project
        settings, model = self.settings(), self.model.currentText().strip()
        checkpoint = self.checkpoint.text().strip() or None
        try:
            if not model:
                raise UserError("Choose a SEEM model (a released name or a config file).")
            settings.validate()
            device = str(resolve_device(self.window.model.device_choice))
        except UserError as exc:
            self.message.setText(str(exc))
            return False
        missing = None if checkpoint else model_download.missing_model(f"seem:{model}")
        if missing is not None:  # fetched on first use, when the person agrees; then the run starts
            self.message.setText(f"SEEM {missing.name} is not on this machine yet: download it (you are asked), "
                                 "or choose the checkpoint file above.")
            model_download.offer_download(self.window, missing, self.start)
            return False
        images = self.chosen_images()
        self._stop.clear()
        self.summary = self.error = None
        self.bar.setRange(0, 0)
        self.message.setText("Loading the model…")
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._started = time.perf_counter()

        def work() -> None:
            try:
                spec = runner.prepare_run(project, settings, model, checkpoint, device=device)
                summary = runner.run(project, spec, make_executor("local"), images,
                                     progress=lambda d, t: self.signals.progress.emit(d, t),
                                     should_stop=self._stop.is_set)
            except CheckpointError as exc:
                self.signals.failed.emit(gui_checkpoint_message(model, checkpoint, exc))
                return
            except Exception as exc:  # reported in the dialog: a failed run must not kill the app
                self.signals.failed.emit(str(exc) if isinstance(exc, UserError) else f"The run failed: {exc!r}")
                return
            self.signals.finished.emit(summary)

        self._thread = threading.Thread(target=work, name="auto-annotate", daemon=True)
        self._thread.start()
        return True

    def cancel(self) -> None:
        """Stop after the image being merged; the run stays resumable."""
        self._stop.set()
        self.message.setText("Stopping after the current image…")

    def _progress(self, done: int, total: int) -> None:
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(done)
        elapsed = time.perf_counter() - self._started
        if done:
            rate = done / elapsed
            eta = (total - done) / rate if rate > 0 else 0.0
            self.rate.setText(f"{done}/{total} images, {rate:.2f} images/s, about {eta:.0f} s left")
            self.message.setText("Annotating…")
        self.window.review_ui.proposals_changed()

    def _finished(self, summary: Any) -> None:
        self.summary = summary
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        resumed = f" (resumed run #{summary.run_id}, {summary.skipped} images already done)" if summary.resumed else ""
        failed = f"; {summary.failed} failed: " + "; ".join(f"{k}: {v}" for k, v in summary.errors.items()) \
            if summary.failed else ""
        stopped = " Cancelled: start again to resume." if self._stop.is_set() else ""
        self.message.setText(f"{summary.images} images annotated, {summary.proposals} proposals{resumed}{failed}."
                             f"{stopped}")
        self.window.review_ui.proposals_changed()

    def _failed(self, message: str) -> None:
        self.error = message
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.message.setText(message)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        # Closing the dialog does not stop the run: it goes on in the background, like its CLI.
        super().closeEvent(event)
