"""The model side of the window: the engine worker and its bridge, the backend/device switcher, the
no-checkpoint banner, neighbour pre-encoding and segment-everything."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QInputDialog,
    QLabel,
)

from seem_annotator.engine import backends
from seem_annotator.errors import UserError
from seem_annotator.gui import model_download
from seem_annotator.gui.everything_review import EverythingReview
from seem_annotator.gui.worker_bridge import WorkerBridge, make_worker

if TYPE_CHECKING:
    from seem_annotator.gui.main_window import MainWindow


def known_model_names() -> list[str]:
    try:
        from seem_annotator.model.config import known_models
    except ImportError:
        return []
    return list(known_models())


def _guess_model(file_name: str, names: list[str]) -> str | None:
    """The known model a checkpoint file name mentions ("seem_focall_v1.pt" -> "focall_v1")."""
    lowered = file_name.lower()
    return next((n for n in sorted(names, key=len, reverse=True) if n in lowered), None)


def backend_choices() -> list[str]:
    """Backends to offer: the engine's list, plus every bundled SEEM model it may not list."""
    names = list(backends.backend_names())
    names += [f"seem:{n}" for n in known_model_names() if f"seem:{n}" not in names]
    return names


class ModelControl:
    def __init__(self, window: MainWindow, backend: Any = None, backend_name: str | None = None,
                 device: str | None = None) -> None:
        self.window = window
        self.device_choice = device or str(window.settings.value("model/device", "auto"))
        wanted = backend_name or str(window.settings.value("model/backend", "")) or backends.default_backend_name()
        # The classical backend starts instantly; a SEEM model loads in the background and replaces it.
        initial = backend if backend is not None else backends.create_backend("classical")
        holder: list[WorkerBridge] = []
        self.bridge = WorkerBridge(make_worker(initial, holder), window)
        holder.append(self.bridge)
        self.bridge.notice.connect(lambda text: window.status.message(text, 10000))
        self.bridge.encode_progress.connect(window.status.set_encode_progress)
        self.backend = initial
        self.bridge.backend_changed.connect(self._backend_changed)
        self.bridge.backend_failed.connect(self._backend_failed)
        self.bridge.everything_done.connect(self._everything_done)
        self.bridge.everything_failed.connect(lambda _key, exc: self._everything_failed(exc))
        self._review: EverythingReview | None = None
        self._review_image: int | None = None  # the image the open review's candidates belong to
        self._prefetch_generation = 0
        self._idle_timer = QTimer(window)
        self._idle_timer.setInterval(250)
        self._idle_timer.timeout.connect(self._poll_idle)
        self._show_backend()
        if backend is None and wanted != "classical":
            self.switch(wanted, self.device_choice)

    @property
    def backend_name(self) -> str:
        return str(getattr(self.backend, "name", "classical"))

    def _show_backend(self) -> None:
        name = self.backend_name
        self.window.status.set_backend(name, str(getattr(self.backend, "device", "cpu")))
        self.window.banner.setVisible(not name.startswith("seem"))
        if self.window.controller is not None:
            self.window.controller.backend_name = name

    # ------------------------------------------------------------------ switching
    def switch(self, name: str, device: str | None) -> None:
        missing = model_download.missing_model(name)
        if missing is not None:  # fetched on first use, when the person agrees
            model_download.offer_download(self.window, missing, lambda: self.switch(name, device))
            return
        self.window.status.message(f"Loading {name}…", 0)
        self.bridge.set_backend(lambda: backends.create_backend(name, device))

    def _backend_changed(self, backend: Any) -> None:
        self.backend = backend
        self.window.settings.setValue("model/backend", self.backend_name)
        self._show_backend()
        self.window.status.message(f"Backend: {self.backend_name}")

    def _backend_failed(self, exc: BaseException) -> None:
        # Stay on the working backend; say what is missing and how to get it.
        message = str(exc) if isinstance(exc, UserError) else f"Could not load the backend: {exc!r}"
        self.window.status.message(message, 15000)
        self._show_backend()

    def choose_backend(self) -> None:
        dialog = QDialog(self.window)
        dialog.setWindowTitle("Backend and device")
        form = QFormLayout(dialog)
        names = QComboBox(dialog)
        names.addItems(backend_choices())
        names.setCurrentText(self.backend_name)
        devices = QComboBox(dialog)
        devices.addItems(["auto", *backends.available_devices()])
        devices.setCurrentText(self.device_choice)
        form.addRow("Backend", names)
        form.addRow("Device", devices)
        form.addRow(QLabel("A SEEM model not on this machine yet is downloaded first (you are asked)."))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(dialog.accept)
        buttons.rejected.connect(dialog.reject)
        form.addRow(buttons)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.device_choice = devices.currentText()
            self.window.settings.setValue("model/device", self.device_choice)
            self.switch(names.currentText(), self.device_choice)

    def choose_checkpoint(self) -> None:
        """Use a SEEM checkpoint file from anywhere: pick the file, confirm which model it is."""
        path, _ = QFileDialog.getOpenFileName(self.window, "Choose a SEEM checkpoint", str(Path.home()),
                                              "Checkpoints (*.pt *.pth *.bin *.safetensors);;All files (*)")
        if not path:
            return
        names = known_model_names()
        guess = _guess_model(Path(path).name, names)
        model, ok = QInputDialog.getItem(self.window, "SEEM model", f"Which model is {Path(path).name}?", names,
                                         names.index(guess) if guess in names else 0, False)
        if ok:
            self.load_checkpoint(model, path)

    def load_checkpoint(self, model: str, path: str) -> None:
        """Load `path` as SEEM model `model` on the worker thread (strict: a mismatch is reported)."""
        device = self.device_choice

        def factory() -> Any:
            from seem_annotator.engine.predictor import SeemPredictor

            return SeemPredictor.from_name(model, device=backends.resolve_device(device), checkpoint=path)

        self.window.status.message(f"Loading {path} as {model}…", 0)
        self.bridge.set_backend(factory)

    def shutdown(self) -> None:
        self._prefetch_generation += 1
        self._idle_timer.stop()
        self.bridge.shutdown()

    # ------------------------------------------------------------------ pre-encoding
    def prefetch_neighbours(self) -> None:
        """Pre-encode the next and previous images in the background so switching is instant."""
        window = self.window
        ctl = window.controller
        if ctl is None or ctl.image_id is None:
            return
        ids = [i for i in (window.images_panel.neighbour(ctl.image_id, +1),
                           window.images_panel.neighbour(ctl.image_id, -1)) if i is not None and i != ctl.image_id]
        if not ids:
            return
        project = window.project
        records = [(project.image(i), project.image_path(i)) for i in ids]
        self._prefetch_generation += 1
        generation = self._prefetch_generation
        status = window.status
        loader = ctl.loader

        def run() -> None:
            inputs = []
            for record, path in records:
                if generation != self._prefetch_generation or not record.readable:
                    continue
                loaded = loader.preload(record, path)  # also makes A/D to it instant
                if loaded is not None:
                    inputs.append(loaded.model_input)
            if inputs and generation == self._prefetch_generation:
                try:
                    self.bridge.prefetch(inputs)
                except RuntimeError:
                    return  # the worker was shut down (window closing)

        status.set_encode_busy(len(ids))
        self._idle_timer.start()
        threading.Thread(target=run, name="prefetch-neighbours", daemon=True).start()

    def _poll_idle(self) -> None:
        # Loading the neighbours shows a busy indicator until their encodes are queued (then the
        # worker's counts take over); hide it once the worker is idle, e.g. when nothing was queued.
        wait_idle = getattr(self.bridge.worker, "wait_idle", None)
        if wait_idle is None or wait_idle(0):
            self._idle_timer.stop()
            self.window.status.set_encode_busy(0)

    # ------------------------------------------------------------------ segment everything
    def segment_everything(self) -> None:
        ctl = self.window.controller
        if ctl is None or ctl.image is None:
            return
        self.window.status.message("Segmenting everything…", 0)
        self._everything_key = ctl.image.model_input.key
        self.bridge.segment_everything(ctl.image.model_input, ctl.label_names())

    def _everything_done(self, key: str, candidates: list) -> None:
        ctl = self.window.controller
        if ctl is None or ctl.image is None or key != ctl.image.model_input.key:
            return  # the user moved on to another image
        if not candidates:
            self.window.status.message("Segment everything found nothing.")
            return
        self.window.status.message(f"{len(candidates)} candidates to review.")
        self.close_review()  # a newer pass replaces the one still open
        review = EverythingReview(candidates, self.window)
        review.preview.connect(self.window.preview_review)
        review.accepted.connect(self._accept_review)
        self._review = review
        self._review_image = ctl.image_id
        review.show()
        # Beside the image it previews on, over the right-hand panels, not in the middle of it.
        frame = self.window.frameGeometry()
        review.move(max(frame.left(), frame.right() - review.frameGeometry().width() - 8), frame.top() + 110)

    def close_review(self) -> None:
        """Discard an open review (its preview leaves the canvas)."""
        review, self._review = self._review, None
        if review is not None:
            review.accepted.disconnect(self._accept_review)
            review.reject()

    def image_changed(self, image_id: int | None) -> None:
        """The window shows another image: a review of the previous one's candidates is discarded
        (the dialog is not modal, so the user can move on while it is open)."""
        if self._review is not None and image_id != self._review_image:
            # A review the user already finished (accepted or discarded) drops nothing: say nothing.
            dropped = len(self._review.candidates) if self._review.isVisible() else 0
            self.close_review()
            if dropped:
                self.window.status.message(
                    f"{dropped} segment-everything candidate{'s' if dropped != 1 else ''} of the previous "
                    "image not accepted: dropped (nothing was stored from them).")

    def _everything_failed(self, exc: BaseException) -> None:
        self.window.show_error(str(exc) if isinstance(exc, UserError) else f"Segment everything failed: {exc!r}")

    def _accept_review(self, chosen: list) -> None:
        ctl = self.window.controller
        if ctl is None or ctl.image_id != self._review_image:
            return  # candidates of another image must never land on this one
        ctl.accept_many(chosen)
