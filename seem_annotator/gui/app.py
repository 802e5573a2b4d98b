"""Application entry: QApplication set-up (high-DPI, organisation name for QSettings), the main
window, and a clear error instead of a Qt abort when there is no display."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from seem_annotator.errors import UserError

ORGANIZATION = "seem-annotator"
APPLICATION = "seem-annotator"


def display_problem() -> str | None:
    """Why no window can be shown here, or None when one can (checked before Qt is touched, since
    a missing display makes Qt abort the process)."""
    platform = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0]
    if platform in ("offscreen", "minimal", "vnc", "eglfs", "linuxfb"):
        return None  # a headless platform chosen on purpose (tests, screenshots, kiosks)
    if not (sys.platform.startswith("linux") or "bsd" in sys.platform):
        return None  # Windows and macOS always have a window server
    if platform == "wayland" and not os.environ.get("WAYLAND_DISPLAY"):
        return "QT_QPA_PLATFORM is wayland but WAYLAND_DISPLAY is not set"
    if platform == "xcb" and not os.environ.get("DISPLAY"):
        return "QT_QPA_PLATFORM is xcb but DISPLAY is not set"
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no graphical display is available (DISPLAY and WAYLAND_DISPLAY are not set)"
    return None


def run(folder: str | None = None, store: str | None = None, backend: str | None = None,
        device: str | None = None) -> int:
    """Start the desktop app, optionally opening `folder`; returns the exit status."""
    problem = display_problem()
    if problem:
        raise UserError(f"Cannot start the desktop app: {problem}. Run it from a desktop session, over "
                        "`ssh -X`, or under `xvfb-run`; the headless commands (import, export, info) work without one.")
    from PySide6.QtCore import QCoreApplication, Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APPLICATION)
    # Crisp masks and markers on fractional-scale screens instead of rounded-up blur.
    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    from seem_annotator.gui.main_window import MainWindow
    from seem_annotator.gui.video_import import is_video, open_video

    window = MainWindow(backend_name=backend, device=device)
    window.show()
    if folder:
        if not Path(folder).exists():
            window.show_error(f"{folder} does not exist; open a folder with Ctrl+O.")
        elif is_video(folder):
            open_video(window, folder)
        else:
            window.open_folder(folder, store)
    else:
        from seem_annotator.gui.project_open import recent_projects, split_recent

        recent = recent_projects(window.settings)
        if recent:
            folder_, store_ = split_recent(recent[0])
            if Path(folder_).is_dir():
                window.open_folder(folder_, store_)
    return int(app.exec())
