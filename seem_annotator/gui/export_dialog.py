"""Export (Ctrl+E): every registered exporter (COCO, LabelMe, plugin formats), its yes/no options,
an output path, and a progress dialog while the export runs on a background thread."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QLabel,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from seem_annotator.core.records import Dataset
from seem_annotator.gui.background import BackgroundJob, progress_dialog, show_progress
from seem_annotator.gui.dialog_parts import format_combo, ok_cancel, path_row


def exporter_flags(exporter: Any) -> list[argparse.Action]:
    """The exporter's on/off options (store_true flags), discovered from its own CLI arguments."""
    parser = argparse.ArgumentParser(add_help=False)
    exporter.add_arguments(parser)
    return [a for a in parser._actions if isinstance(a, argparse._StoreTrueAction)]


def default_output(exporter: Any, project_root: Path) -> Path:
    base = project_root / "exports"
    return base / f"{exporter.name}.json" if exporter.output == "file" else base / exporter.name


class ExportDialog(QDialog):
    """Choose a format, its options and where to write; then `run_export` does the work."""

    def __init__(self, exporters: dict[str, Any], project_root: Path, parent: QWidget | None = None,
                 settings: QSettings | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export annotations")
        self.exporters = exporters
        self.project_root = project_root
        self.settings = settings or QSettings()
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.format = format_combo(self, exporters)
        form.addRow("Format", self.format)
        row, self.path = path_row(self, self._browse)
        form.addRow("Output", row)
        layout.addLayout(form)
        self.options_box = QVBoxLayout()
        layout.addLayout(self.options_box)
        self.note = QLabel("", self)
        self.note.setWordWrap(True)
        layout.addWidget(self.note)
        buttons = ok_cancel(self, "Export")
        layout.addWidget(buttons)
        self._checks: dict[str, QCheckBox] = {}
        self.format.currentIndexChanged.connect(self._format_changed)
        last = self.settings.value("export/format", "coco")
        index = self.format.findData(last)
        self.format.setCurrentIndex(max(0, index))
        self._format_changed()

    @property
    def exporter(self) -> Any:
        return self.exporters[self.format.currentData()]

    def _format_changed(self) -> None:
        exporter = self.exporter
        for check in self._checks.values():
            check.setParent(None)
        self._checks = {}
        for action in exporter_flags(exporter):
            check = QCheckBox(action.help or action.option_strings[0], self)
            self.options_box.addWidget(check)
            self._checks[action.dest] = check
        saved = self.settings.value(self._path_key(exporter.name))
        self.path.setText(str(saved) if saved else str(default_output(exporter, self.project_root)))
        note = "Writes one file." if exporter.output == "file" else "Writes into a folder."
        root_note = getattr(exporter, "images_root_note", None)  # which image root readers must pass
        self.note.setText(note + (" " + root_note(self.project_root) if root_note else ""))

    def _browse(self) -> None:
        exporter = self.exporter
        if exporter.output == "file":
            path, _ = QFileDialog.getSaveFileName(self, "Export to", self.path.text())
        else:
            path = QFileDialog.getExistingDirectory(self, "Export into folder", self.path.text())
        if path:
            self.path.setText(path)

    def _path_key(self, exporter: str) -> str:
        # Per project: another project's remembered output would be overwritten by this one's export.
        project = hashlib.sha1(str(Path(self.project_root).resolve()).encode()).hexdigest()[:16]
        return f"export/path/{project}/{exporter}"

    def options(self) -> dict[str, Any]:
        return {dest: check.isChecked() for dest, check in self._checks.items()}

    def output_path(self) -> Path:
        return Path(self.path.text()).expanduser()

    def remember(self) -> None:
        self.settings.setValue("export/format", self.exporter.name)
        self.settings.setValue(self._path_key(self.exporter.name), str(self.output_path()))


def run_export(parent: QWidget, exporter: Any, dataset: Dataset, out: Path, options: dict[str, Any],
               on_done=None) -> BackgroundJob:
    """Start an export with a progress dialog; reports the outcome in a message box (or `on_done(result,
    error)` when given, used by tests and the status bar)."""
    dialog = progress_dialog(parent, "Export", f"Exporting {exporter.name}…", "Hide")
    job = BackgroundJob(f"export-{exporter.name}", lambda job: exporter.export(dataset, out, options, job.iterate),
                        lambda exc: f"The {exporter.name} export failed: {type(exc).__name__}: {exc}")

    def progress(done: int, total: int, text: str) -> None:
        show_progress(dialog, done, total, f"Exporting {exporter.name}: {text}" if text else None)

    def finished(result: Any) -> None:
        dialog.reset()
        if on_done is not None:
            on_done(result, None)
            return
        text = f"Exported {exporter.name} to {out}."
        if getattr(result, "warnings", None):
            text += "\n\n" + "\n".join(result.warnings[:10])
        QMessageBox.information(parent, "Export finished", text)

    def failed(message: str) -> None:
        dialog.reset()
        if on_done is not None:
            on_done(None, message)
            return
        QMessageBox.warning(parent, "Export failed", message)

    job.progress.connect(progress)
    job.finished.connect(finished)
    job.failed.connect(failed)
    job.start()
    return job
