"""Status bar widgets (backend, device, last decode time, background encode progress, cursor) and the
banner shown when no SEEM checkpoint is available."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QStatusBar, QWidget


def device_kind(device: str) -> str:
    """Human name of a torch device string: "cuda:0" -> "CUDA:0", "mps" -> "MPS", else "CPU"."""
    device = (device or "cpu").lower()
    if device.startswith("cuda"):
        return device.upper()
    if device == "mps":
        return "MPS"
    return "CPU"


class StatusPanel:
    """Permanent widgets on the main window's status bar."""

    def __init__(self, bar: QStatusBar) -> None:
        self.bar = bar
        self.backend = QLabel("backend: -")
        self.device = QLabel("device: -")
        self.decode = QLabel("decode: -")
        self.cursor = QLabel("")
        self.zoom = QLabel("")
        self.encode = QProgressBar()
        self.encode.setMaximumWidth(140)
        self.encode.setTextVisible(True)
        self.encode.setVisible(False)
        self.busy = QLabel("")
        for widget in (self.busy, self.encode, self.cursor, self.zoom, self.decode, self.backend, self.device):
            bar.addPermanentWidget(widget)
        self.backend.setObjectName("status_backend")
        self.device.setObjectName("status_device")
        self.decode.setObjectName("status_decode")
        bar.messageChanged.connect(lambda text: bar.setToolTip(text))  # a cut-off message can be read in full on hover

    def set_backend(self, name: str, device: str) -> None:
        self.backend.setText(f"backend: {name}")
        self.device.setText(f"device: {device_kind(device)}")

    def set_decode_ms(self, ms: float | None) -> None:
        self.decode.setText("decode: -" if ms is None else f"decode: {ms:.0f} ms")

    def set_busy(self, busy: bool) -> None:
        self.busy.setText("segmenting…" if busy else "")

    def set_encode_busy(self, images: int) -> None:
        """Loading `images` neighbouring images to pre-encode (a busy indicator; hidden at 0)."""
        self.encode.setVisible(images > 0)
        self.encode.setRange(0, 0)  # not queued on the worker yet: no counts to show
        self.encode.setFormat(f"pre-encoding {images}")
        self._encode_tooltip(images)

    def set_encode_progress(self, done: int, total: int) -> None:
        """The worker's background pre-encoding: `done` of `total` encodes (hidden when finished)."""
        if total <= 0 or done >= total:
            self.encode.setVisible(False)
            return
        self.encode.setRange(0, total)
        self.encode.setValue(done)
        self.encode.setFormat(f"pre-encoding {done}/{total}")
        self.encode.setVisible(True)
        self._encode_tooltip(total - done)

    def _encode_tooltip(self, images: int) -> None:
        self.encode.setToolTip(f"Encoding the next/previous image{'s' if images != 1 else ''} in the background "
                               "so switching to them is instant")

    def set_cursor(self, x: float, y: float, inside: bool) -> None:
        self.cursor.setText(f"x {x:.0f}  y {y:.0f}" if inside else "")

    def set_zoom(self, zoom: float) -> None:
        self.zoom.setText(f"{zoom * 100:.0f}%")

    def message(self, text: str, ms: int = 6000) -> None:
        """A transient message; a long one is cut off by the bar, so it is also its tooltip in full."""
        self.bar.showMessage(text, ms)

    def full_text(self) -> str:
        """The current message in full (empty when it has timed out)."""
        return self.bar.currentMessage()


NO_CHECKPOINT_TEXT = (
    "<b>No SEEM checkpoint found - running the classical backend.</b> "
    "Works now: clicks, boxes, polygons, scribbles, brush/eraser, manual polygons, export. "
    "Needs SEEM: text and voice prompts, referring regions, label proposals, labelled segment-everything."
)


class NoCheckpointBanner(QFrame):
    """A dismissable strip above the canvas explaining what works without SEEM and how to get it."""

    choose_file = Signal()
    download = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("no_checkpoint_banner")
        self.setStyleSheet("#no_checkpoint_banner { background: #fff4c2; border-bottom: 1px solid #d9c36a; }"
                           "#no_checkpoint_banner QLabel { color: #3a3000; }")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        self.label = QLabel(NO_CHECKPOINT_TEXT, self)
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        layout.addWidget(self.label, 1)
        self.download_button = QPushButton("Download SEEM", self)
        self.download_button.setToolTip("Download focalt_v1 from Hugging Face, once: it is kept in the cache "
                                        "(or: seem-annotator models download focalt_v1)")
        self.download_button.clicked.connect(self.download.emit)
        layout.addWidget(self.download_button)
        choose = QPushButton("Choose checkpoint…", self)
        choose.clicked.connect(self.choose_file.emit)
        layout.addWidget(choose)
        close = QPushButton("Hide", self)
        close.clicked.connect(self.hide)
        layout.addWidget(close)
