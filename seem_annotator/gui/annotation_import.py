"""File > Import annotations…: a COCO file, a folder of LabelMe files (or a plugin's format) added to
the open project without the command line; File > Undo import…, which takes the newest import back;
and, when a folder opened with no annotations yet holds LabelMe files, a strip above the canvas that
offers to bring them in (a labelme team's first step).

The file is read and validated on a background thread (a bad file imports nothing); the store
takes it on the GUI thread, the store's one writer, in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from seem_annotator.core.records import Dataset
from seem_annotator.core.transfer import describe_undone_import
from seem_annotator.errors import UserError
from seem_annotator.formats.common import rebase_dataset
from seem_annotator.formats.labelme_read import label_files
from seem_annotator.formats.registry import default_registry
from seem_annotator.gui.background import BackgroundJob, progress_dialog, show_progress, start_with_dialog
from seem_annotator.gui.dialog_parts import format_combo, note, ok_cancel, path_row

if TYPE_CHECKING:
    from seem_annotator.gui.main_window import MainWindow

OFFER_DISMISSED = "import_offer/dismissed"  # settings key: store paths whose offer was declined


def importers() -> dict[str, Any]:
    return dict(default_registry().importers)


class ImportDialog(QDialog):
    """Which format and which file (or folder) to import into the open project."""

    def __init__(self, available: dict[str, Any], project_root: Path, parent: QWidget | None = None,
                 settings: QSettings | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import annotations")
        self.setMinimumWidth(560)
        self.available = available
        self.settings = settings or QSettings()
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.format = format_combo(self, available)
        form.addRow("Format", self.format)
        row, self.path = path_row(self, self._browse)
        form.addRow("From", row)
        layout.addLayout(form)
        layout.addWidget(note(self, f"Image file names are taken relative to this project's images folder, "
                                    f"{project_root}. Images match by file name and labels by name; the annotations "
                                    "are added to those already here. A file with any error imports nothing."))
        self.buttons = ok_cancel(self, "Import")
        layout.addWidget(self.buttons)
        self.format.setCurrentIndex(max(0, self.format.findData(self.settings.value("import/format", "coco"))))
        self.path.textChanged.connect(self._check)
        self.format.currentIndexChanged.connect(self._check)
        self._check()

    @property
    def importer(self) -> Any:
        return self.available[self.format.currentData()]

    def source(self) -> Path:
        return Path(self.path.text().strip()).expanduser()

    def _browse(self) -> None:
        start = self.path.text() or str(self.settings.value("import/folder", str(Path.home())))
        if self.importer.source == "dir":
            path = QFileDialog.getExistingDirectory(self, "Import from folder", start)
        else:
            path, _ = QFileDialog.getOpenFileName(self, "Import from file", start, "JSON (*.json);;All files (*)")
        if path:
            self.path.setText(path)

    def _check(self) -> None:
        source = self.source()
        ok = bool(self.path.text().strip()) and (source.is_dir() if self.importer.source == "dir" else source.is_file())
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)

    def remember(self) -> None:
        self.settings.setValue("import/format", self.importer.name)
        self.settings.setValue("import/folder", str(self.source().parent))


def import_annotations_interactive(window: MainWindow) -> None:
    if window.project is None:
        window.show_error("Open a folder first: annotations are imported into its project.", modal=True)
        return
    dialog = ImportDialog(importers(), window.project.root, window, window.settings)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return
    dialog.remember()
    import_annotations_to(window, dialog.importer.name, dialog.source())


def import_annotations_to(window: MainWindow, name: str, source: str | Path, on_done=None) -> BackgroundJob | None:
    """Read `source` with importer `name` in the background, then add it to the open project.
    `on_done(summary, error)` is called on the GUI thread when given (tests)."""
    project = window.project
    if project is None:
        return None
    importer = importers()[name]
    source, options = Path(source), {"images": str(project.root)}
    dialog = progress_dialog(window, "Import annotations", f"Reading {source.name}…", None)

    def read(job: BackgroundJob) -> Dataset:
        try:
            return importer.read(source, options, job.iterate)
        except UserError as exc:
            raise UserError(f"Nothing was imported: {exc}") from exc

    job = BackgroundJob(f"import-{name}", read,
                        lambda exc: f"Nothing was imported: the {name} import failed: {type(exc).__name__}: {exc}")

    def finished(dataset: Dataset) -> None:
        if window.project is not project:
            return  # the project was closed meanwhile
        try:
            summary = project.import_dataset(rebase_dataset(dataset, project.root), source=source.name)
        except UserError as exc:
            window.show_error(f"Nothing was imported: {exc}", modal=True)
            if on_done is not None:
                on_done(None, str(exc))
            return
        refresh_after_import(window)
        text = (f"Imported {_count(summary.get('annotations_added', 0), 'annotation')} on "
                f"{_count(len(dataset.images), 'image')} ({_count(summary.get('labels_added', 0), 'new label')}, "
                f"{_count(summary.get('images_added', 0), 'new image')}).")
        warnings = dataset.extra.get("warnings", [])
        window.status.message(text + (f" {len(warnings)} warning(s): {warnings[0]}" if warnings else ""))
        if on_done is not None:
            on_done(summary, None)

    return start_with_dialog(window, job, dialog, lambda done, total, _text: show_progress(dialog, done, total),
                             finished, on_done)


def undo_import_text(window: MainWindow) -> tuple[str, bool]:
    """The File menu's entry for the newest import: its text and whether there is one to undo."""
    record = window.project.last_import() if window.project is not None else None
    if record is None:
        return "Undo import", False
    return f"Undo import of {record.source or 'annotations'}…", True


def undo_import_interactive(window: MainWindow, ask: Callable[[str], bool] | None = None) -> dict[str, int] | None:
    """Take back the newest import after saying what goes (`ask(question)` -> go ahead; a message
    box when None). Returns what was removed, or None."""
    project = window.project
    if project is None:
        window.status.message("Open a folder first.")
        return None
    record = project.last_import()
    if record is None:
        window.status.message("There is no import to undo: only the newest import can be undone, once.")
        return None
    present, edited = project.import_still_present(record)
    question = f"Remove the {_count(present, 'annotation')} imported from {record.source or 'the last import'}?"
    if edited:
        question += f" {edited} of them were edited since; those edits go too."
    if record.labels:
        question += " Labels it added go too when nothing else uses them."
    question += " This cannot be undone."
    if ask is None:
        def ask(text: str) -> bool:
            answer = QMessageBox.question(window, "Undo import", text)
            return answer == QMessageBox.StandardButton.Yes
    if not ask(question):
        return None
    try:
        summary = project.undo_last_import()
    except UserError as exc:
        window.show_error(f"The import was not undone: {exc}", modal=True)
        return None
    refresh_after_import(window)
    window.status.message(describe_undone_import(record.source, summary or {}))
    return summary


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def refresh_after_import(window: MainWindow) -> None:
    """The image list, labels and the current image's annotations, as the store now has them."""
    window.images_panel.set_images(window.project.images(), window.project.root)
    window.refresh_labels()
    if window.controller is not None:
        window.controller.refresh_image()


class LabelmeOffer(QFrame):
    """A strip above the canvas: this folder holds LabelMe files and the project has no annotations
    yet; import them, or not (remembered for this project)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.setObjectName("labelme_offer")
        self.setStyleSheet("#labelme_offer { background: #dff0ff; border-bottom: 1px solid #8db8dc; }"
                           "#labelme_offer QLabel { color: #0d2a40; }")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        layout.addWidget(self.label, 1)
        self.import_button = QPushButton("Import them", self)
        self.import_button.clicked.connect(self._import)
        layout.addWidget(self.import_button)
        self.dismiss_button = QPushButton("Not now", self)
        self.dismiss_button.clicked.connect(self._dismiss)
        layout.addWidget(self.dismiss_button)
        self.setVisible(False)
        self.files = 0

    def check(self) -> None:
        """After a project opens: offer its folder's LabelMe files when it has no annotations yet.
        The folder is walked on a background thread (a dataset folder can hold 100,000 files);
        the strip appears when the count comes back, if that project is still the one open."""
        project = self.window.project
        self.setVisible(False)
        self.files = 0
        if project is None or project.read_only or sum(project.label_counts().values()) > 0:
            return
        if str(project.store_path) in _dismissed(self.window.settings):
            return
        root, store = project.root, project.store_path
        job = BackgroundJob("labelme-offer", lambda job: len(label_files(root)),
                            lambda exc: f"Could not look for LabelMe files in {root}: {exc}")
        job.finished.connect(lambda count: self._offer(store, count))
        self._job = job  # keep it alive until it reports (a failure offers nothing)
        job.start()

    def _offer(self, store: Path, count: int) -> None:
        project = self.window.project
        if project is None or project.store_path != store or sum(project.label_counts().values()) > 0:
            return  # another project opened, or this one has annotations by now
        self.files = count
        if not count:
            return
        self.label.setText(f"This folder has {count} LabelMe file{'s' if count != 1 else ''} (.json). "
                           "Import their shapes as annotations?")
        self.setVisible(True)

    def _import(self) -> None:
        self.setVisible(False)
        if self.window.project is not None:
            import_annotations_to(self.window, "labelme", self.window.project.root)

    def _dismiss(self) -> None:
        self.setVisible(False)
        if self.window.project is not None:
            seen = _dismissed(self.window.settings)
            self.window.settings.setValue(OFFER_DISMISSED, [*seen, str(self.window.project.store_path)][-50:])


def _dismissed(settings: QSettings) -> list[str]:
    value = settings.value(OFFER_DISMISSED, [])
    return [value] if isinstance(value, str) else [str(v) for v in (value or [])]


def install_labelme_offer(window: MainWindow) -> LabelmeOffer:
    """Put the offer strip above the canvas (below the no-checkpoint banner)."""
    offer = LabelmeOffer(window)
    column = window.centralWidget().layout()
    column.insertWidget(column.indexOf(window.canvas), offer)
    return offer
