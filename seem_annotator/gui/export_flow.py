"""Export from the window: the interactive dialog (Ctrl+E), a programmatic `export_to` (tests,
scripts), and optional automatic LabelMe sidecars written beside each image as it changes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QTimer

from seem_annotator.core.records import Dataset
from seem_annotator.errors import UserError
from seem_annotator.gui.export_dialog import ExportDialog, run_export

if TYPE_CHECKING:
    from seem_annotator.gui.main_window import MainWindow


def exporters() -> dict[str, Any]:
    from seem_annotator.formats.registry import default_registry

    return dict(default_registry().exporters)


def export_interactive(window: MainWindow) -> None:
    if window.project is None:
        window.status.message("Open a folder first (Ctrl+O).")
        return
    try:
        available = exporters()
    except UserError as exc:
        window.show_error(str(exc))
        return
    dialog = ExportDialog(available, window.project.root, window, window.settings)
    if dialog.exec() != ExportDialog.DialogCode.Accepted:
        return
    dialog.remember()
    export_to(window, dialog.exporter.name, dialog.output_path(), dialog.options())


def export_to(window: MainWindow, name: str, out: str | Path, options: dict[str, Any] | None = None,
              on_done=None) -> Any:
    """Export the whole project with exporter `name` to `out` in the background (progress dialog).
    `on_done(result, error_message)` is called on the GUI thread when given."""
    exporter = exporters()[name]
    dataset = window.project.snapshot()  # read on the GUI thread: the store connection lives here
    runner = run_export(window, exporter, dataset, Path(out), dict(options or {}), on_done)
    window._export_runner = runner  # keep it alive until it reports
    window.status.message(f"Exporting {name} to {out}…")
    return runner


class SidecarWriter:
    """Writes `<image>.json` (LabelMe) beside an image shortly after its annotations change, when
    enabled in the File menu. Debounced so a burst of edits writes once."""

    def __init__(self, window: MainWindow) -> None:
        self.window = window
        self.timer = QTimer(window)
        self.timer.setSingleShot(True)
        self.timer.setInterval(400)
        self.timer.timeout.connect(self.write_now)
        self._image_id: int | None = None
        self._warned = False

    def enabled(self) -> bool:
        return bool(self.window.settings.value("export/sidecars", False, type=bool))

    def schedule(self) -> None:
        ctl = self.window.controller
        if ctl is None or ctl.image_id is None or not self.enabled():
            return
        if self._image_id is not None and self._image_id != ctl.image_id and self.timer.isActive():
            self.write_now()  # flush the previous image before switching target
        self._image_id = ctl.image_id
        self.timer.start()

    def write_now(self) -> None:
        project = self.window.project
        image_id, self._image_id = self._image_id, None
        if project is None or image_id is None:
            return
        image = project.image(image_id)
        dataset = Dataset(images=[image], labels=project.labels(), annotations=project.annotations(image_id),
                          root=str(project.root))
        try:
            exporters()["labelme"].export(dataset, project.root, {})
        except (UserError, OSError, KeyError) as exc:
            if not self._warned:  # once per session: a read-only folder would otherwise nag forever
                self._warned = True
                self.window.status.message(f"LabelMe sidecar not written: {exc}", 10000)
