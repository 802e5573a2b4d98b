"""The main window: assembly of canvas, panels, tool bars, menus and status bar, plus the glue that
redraws them from the controller's signals. Behaviour lives in controller.py and commands.py."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QMainWindow,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from seem_annotator.errors import UserError
from seem_annotator.gui import menus, model_download, overlays, project_open, video_import
from seem_annotator.gui.annotation_import import install_labelme_offer
from seem_annotator.gui.canvas import ImageCanvas
from seem_annotator.gui.commands import Commands
from seem_annotator.gui.controller import AnnotationController
from seem_annotator.gui.edit_tools import TOOL_CLASSES
from seem_annotator.gui.export_flow import SidecarWriter, export_interactive
from seem_annotator.gui.image_list import ImageListPanel
from seem_annotator.gui.labels_panel import LabelsPanel
from seem_annotator.gui.model_control import ModelControl
from seem_annotator.gui.review_wiring import ReviewUi
from seem_annotator.gui.sequence_strip import install_sequence_strip
from seem_annotator.gui.shortcuts import CheatSheetDialog, ShortcutManager
from seem_annotator.gui.status import NoCheckpointBanner, StatusPanel
from seem_annotator.gui.tools import Tool
from seem_annotator.gui.view_sync import ViewSyncMixin


class MainWindow(ViewSyncMixin, QMainWindow):
    """`window.commands` is the command API (menus, shortcuts, voice); `open_folder` opens a project."""

    def __init__(self, settings: QSettings | None = None, backend: Any = None, backend_name: str | None = None,
                 device: str | None = None) -> None:
        super().__init__()
        self.settings = settings or QSettings()
        self.setWindowTitle("seem-annotator")
        self.setAcceptDrops(True)
        self.resize(1400, 900)
        self.project: Any = None
        self.controller: AnnotationController | None = None
        self.commands = Commands(self)
        self.canvas = ImageCanvas(self)
        self.canvas.set_opacity(int(self.settings.value("view/opacity", 45)) / 100)
        self.banner = NoCheckpointBanner(self)
        self.banner.setVisible(False)
        central = QWidget(self)
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.banner)
        column.addWidget(self.canvas, 1)
        self.setCentralWidget(central)
        self.images_panel = ImageListPanel(self)
        self.labels_panel = LabelsPanel(self)
        self._dock("Images", self.images_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self._dock("Labels", self.labels_panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.status = StatusPanel(self.statusBar())
        self.review_ui = ReviewUi(self)  # review mode, the Review dock, the auto-annotate dialog
        self.review = self.review_ui.review
        self.shortcuts = ShortcutManager(self, self.settings)
        menus.bind_actions(self)
        menus.build_toolbar(self)
        menus.build_menus(self)
        self.tools: dict[str, Tool] = {}
        self.model = ModelControl(self, backend=backend, backend_name=backend_name, device=device)
        # Display-size masks by (annotation id, updated_at): revisiting an image skips the decodes.
        self._mask_cache: OrderedDict[tuple[int, float], Any] = OrderedDict()
        self.sidecars = SidecarWriter(self)
        self._shown_image: int | None = None
        self._wire_panels()
        self.canvas.cursor_moved.connect(self._cursor_moved)
        self.canvas.hovered.connect(self._hovered)
        self.canvas.zoom_changed.connect(self.status.set_zoom)
        self.banner.choose_file.connect(self.model.choose_checkpoint)
        self.banner.download.connect(lambda: model_download.download_model(
            self, model_download.DEFAULT_MODEL,
            then=lambda: self.model.switch(f"seem:{model_download.DEFAULT_MODEL}", self.model.device_choice)))
        self._install_voice()
        self.sequence_strip = install_sequence_strip(self)  # frames of videos: tracks and propagation
        self.labelme_offer = install_labelme_offer(self)  # a labelme folder's shapes, on first open
        self.set_tool(str(self.settings.value("tools/last", "point")))
        # Docks, toolbars and size as the user left them.
        if self.settings.contains("window/geometry"):
            self.restoreGeometry(self.settings.value("window/geometry"))
            self.restoreState(self.settings.value("window/state"))

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock_{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _install_voice(self) -> None:
        try:
            from seem_annotator.gui.voice_panel import install_voice_panel
        except ImportError:
            return  # voice is optional: the rest of the app works without it
        try:
            install_voice_panel(self)
        except Exception as exc:  # a voice problem must never stop the labelling app
            self.status.message(f"Voice control unavailable: {exc}")

    def _wire_panels(self) -> None:
        self.images_panel.image_chosen.connect(self.show_image)
        lp = self.labels_panel
        lp.use_label.connect(self.commands.set_label)
        lp.add_requested.connect(lambda name: self._project_call(self.project.add_label, name))
        lp.rename_requested.connect(lambda i, name: self._project_call(self.project.rename_label, i, name))
        lp.merge_requested.connect(lambda s, d: self._project_call(self.project.merge_labels, s, d))
        lp.color_requested.connect(lambda i, c: self._project_call(self.project.set_label_color, i, c))
        lp.shortcut_requested.connect(lambda i, d: self._project_call(self.project.set_label_shortcut, i, d))
        lp.keep_last.toggled.connect(self._keep_last_toggled)
        lp.keep_last.setChecked(self.settings.value("labels/keep_last", False, type=bool))

    def _project_call(self, fn, *args) -> None:
        if self.project is None:
            return
        try:
            fn(*args)
        except UserError as exc:
            self.show_error(str(exc))
        self.refresh_labels()
        if self.controller is not None:
            self.controller.reload()

    def _keep_last_toggled(self, on: bool) -> None:
        self.settings.setValue("labels/keep_last", on)
        if self.controller is not None:
            self.controller.keep_last_label = on

    # ------------------------------------------------------------------ projects
    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of images")
        if folder:
            self.open_folder(folder)

    def open_folder(self, folder: str | Path, store: str | Path | None = None) -> bool:
        """Open a folder of images as a project (store beside the images, else as chosen/cached)."""
        folder = Path(folder)
        if self.project is not None and store is None and folder.expanduser().resolve() == self.project.root.resolve():
            # Already open (Open recent, Ctrl+O on the same folder): its store is locked by this very
            # window, so opening it again would fail; look for new images instead.
            self.rescan_folder()
            return True
        if store is None and folder.is_dir() and not project_open.folder_writable(folder) \
                and not project_open.default_store_path(folder).is_file() and self.isVisible():
            answer = QFileDialog.getExistingDirectory(
                self, f"{folder} is read-only: choose where to keep the project", str(Path.home()))
            store = answer or None
        try:
            project = project_open.open_project(folder, store)
        except UserError as exc:
            self.show_error(str(exc), modal=True)
            return False
        self.close_project()
        self.project = project
        self.controller = AnnotationController(project, self.model.bridge, self)
        self.controller.backend_name = self.model.backend_name
        self.controller.keep_last_label = self.labels_panel.keep_last.isChecked()
        self.controller.stroke_width = float(self.settings.value("tools/stroke_width", 8.0))
        self.controller.brush_width = float(self.settings.value("tools/brush_width", 12.0))
        self.controller.tiny_mask_pixels = int(self.settings.value("labels/tiny_mask_pixels", 64))
        self.controller.tiny_mask_fraction = float(self.settings.value("labels/tiny_mask_fraction", 1e-4))
        self._connect_controller(self.controller)
        for tool in self.tools.values():
            tool.host = self.controller
        store_note = None if project.store_path.parent == folder.resolve() / ".seem-annotator" else str(project.store_path)
        project_open.remember_project(self.settings, str(folder.resolve()), store_note)
        self.setWindowTitle(f"seem-annotator - {project.root.name}")
        found = self._rescan()  # images added or changed since the project was last open
        self.images_panel.set_images(project.images(), project.root)
        self.refresh_labels()
        self.sync_polarity()
        self.sync_widths()
        readable = [im for im in project.images() if im.readable]
        last = self.settings.value(f"last_image/{project.store_path}")
        start = next((im.id for im in readable if str(im.id) == str(last)), readable[0].id if readable else None)
        if start is not None:
            self.show_image(start)
        else:
            self.status.message("No readable images in this folder.")
        if found:
            self.status.message(found)
        self.labelme_offer.check()
        return True

    def rescan_folder(self) -> None:
        """Pick up images added to (or changed in) the folder while the project is open."""
        if self.project is None:
            return
        found = self._rescan()
        self.images_panel.set_images(self.project.images(), self.project.root)
        if self.controller is not None:
            self.controller.refresh_image()
        self.status.message(found or "No new or changed images.")

    def _rescan(self) -> str:
        try:
            return self.project.describe_rescan(self.project.rescan())
        except UserError as exc:
            self.show_error(str(exc))
            return ""

    def close_project(self) -> None:
        self.model.close_review()  # its candidates belong to this project's image
        self.review_ui.close()
        self.sequence_strip.shutdown()  # a propagation run writes to this project's store
        self.labelme_offer.setVisible(False)
        if self.controller is not None:
            self.controller.deleteLater()
            self.controller = None
        if self.project is not None:
            self.project.close()
            self.project = None
        self.canvas.set_image(None, (0, 0))

    def fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for entry in project_open.recent_projects(self.settings):
            folder, store = project_open.split_recent(entry)
            action = self.recent_menu.addAction(folder if store is None else f"{folder} (store {store})")
            action.triggered.connect(lambda _c=False, f=folder, s=store: self.open_folder(f, s))

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        for url in event.mimeData().urls():
            path = Path(url.toLocalFile())
            if path.is_dir():
                self.open_folder(path)
                event.acceptProposedAction()
                return
            if video_import.is_video(path):
                # Into the open project; with none open, the video's own project beside it.
                if self.project is not None:
                    video_import.import_video_to(self, path)
                else:
                    video_import.open_video(self, path)
                event.acceptProposedAction()
                return
            if path.is_file():
                self.open_folder(path.parent)
                event.acceptProposedAction()
                return

    def closeEvent(self, event) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.sidecars.write_now()  # a pending LabelMe sidecar is written, not lost
        self.model.shutdown()
        self.close_project()
        super().closeEvent(event)

    # ------------------------------------------------------------------ images
    def show_image(self, image_id: int) -> None:
        ctl = self.controller
        if ctl is None or (image_id == ctl.image_id and ctl.image is not None):
            return
        for tool in self.tools.values():
            tool.cancel()
        ctl.open_image(image_id)
        self.settings.setValue(f"last_image/{self.project.store_path}", image_id)

    def step_image(self, step: int) -> None:
        if self.controller is None:
            return
        target = self.images_panel.neighbour(self.controller.image_id, step)
        if target is not None and target != self.controller.image_id:
            self.show_image(target)

    def _connect_controller(self, ctl: AnnotationController) -> None:
        ctl.image_changed.connect(self._image_changed)
        ctl.annotations_changed.connect(self.refresh_annotations)
        ctl.annotations_changed.connect(self.sidecars.schedule)
        ctl.candidate_changed.connect(self.refresh_candidate)
        ctl.labels_changed.connect(self.refresh_labels)
        ctl.image_status_changed.connect(self.images_panel.update_image)
        ctl.busy_changed.connect(self.status.set_busy)
        ctl.decoded.connect(self.status.set_decode_ms)
        ctl.message.connect(self.status.message)
        ctl.error.connect(self.show_error)
        ctl.needs_label.connect(lambda: self.ask_label(for_selection=False))
        self.review_ui.connect(ctl)

    def _image_changed(self) -> None:
        ctl = self.controller
        if ctl.image is None:
            self.canvas.set_image(None, (0, 0))
            # Status messages fade; an image that cannot be shown says why where it would be.
            self.canvas.set_placeholder(ctl.image_problem)
        else:
            self.canvas.set_placeholder("")
            self.canvas.set_image(overlays.rgb_to_qimage(ctl.image.display), ctl.image.full_size)
        self._shown_image = ctl.image_id
        self.images_panel.select(ctl.image_id)
        self.sequence_strip.show_image(ctl.image_id)
        self.refresh_annotations()
        self.refresh_candidate()
        self._reload_vertex_tool()
        self.model.image_changed(ctl.image_id)
        self.model.prefetch_neighbours()

    # ------------------------------------------------------------------ tools and view
    def set_tool(self, name: str) -> None:
        if name not in {t.name for t in TOOL_CLASSES}:
            name = "point"
        if not self.tools:
            host = self.controller if self.controller is not None else _NoHost()
            self.tools = {cls.name: cls(self.canvas, host) for cls in TOOL_CLASSES}
        if self.canvas.tool is not None:
            self.canvas.tool.deactivate()
        tool = self.tools[name]
        self.canvas.tool = tool
        tool.activate()
        self.shortcuts.actions[f"tool_{name}"].setChecked(True)
        self.settings.setValue("tools/last", name)
        self.sync_widths()
        self.status.message(f"{tool.title}: {tool.hint}" if tool.hint else tool.title, 8000)

    def sync_polarity(self) -> None:
        positive = True if self.controller is None else self.controller.positive
        self.polarity_action.setText("+ add" if positive else "- remove")

    def sync_widths(self) -> None:
        ctl = self.controller
        if ctl is None:
            return
        brushy = self.canvas.tool is not None and self.canvas.tool.name in ("brush", "eraser")
        self.width_spin.blockSignals(True)
        self.width_spin.setValue(round(ctl.brush_width if brushy else ctl.stroke_width))
        self.width_spin.blockSignals(False)

    def width_changed(self, value: int) -> None:
        ctl = self.controller
        if ctl is None:
            return
        if self.canvas.tool is not None and self.canvas.tool.name in ("brush", "eraser"):
            ctl.brush_width = float(value)
            self.settings.setValue("tools/brush_width", float(value))
        else:
            ctl.stroke_width = float(value)
            self.settings.setValue("tools/stroke_width", float(value))

    def opacity_changed(self, value: int) -> None:
        self.settings.setValue("view/opacity", value)
        self.canvas.set_opacity(value / 100)

    def focus_text_prompt(self) -> None:
        self.text_field.setFocus()
        self.text_field.selectAll()

    def use_label_digit(self, digit: int) -> None:
        label = self.labels_panel.by_shortcut(digit)
        if label is not None:
            self.commands.set_label(label.name)

    def _hovered(self, ann_id: int | None) -> None:
        ctl = self.controller
        ann = next((a for a in ctl.annotations if a.id == ann_id), None) if ctl is not None else None
        if ann is not None:
            score = "" if ann.score is None else f"  score {ann.score:.2f}"
            self.status.message(f"{ctl.project.label(ann.label_id).name}  (#{ann.id}){score}", 3000)

    def _cursor_moved(self, x: float, y: float) -> None:
        h, w = self.canvas.full_size
        self.status.set_cursor(x, y, 0 <= x < w and 0 <= y < h)

    # ------------------------------------------------------------------ dialogs
    def ask_label(self, for_selection: bool) -> None:
        """Type a label (completion from the project's labels) for the object or the selection."""
        ctl = self.controller
        if ctl is None:
            return
        if for_selection and not ctl.selected:
            self.status.message("Select an annotation first (Q, then click it).")
            return
        names = list(ctl.label_names())
        if for_selection:
            current = ctl.selection_label() or ""
        else:  # a suggestion only: the user confirms it in the dialog
            current = ctl.resolve_label() or ctl.last_label or ""
        items = ([current] if current and current not in names else []) + names
        name, ok = QInputDialog.getItem(self, "Label", "Label:", items, items.index(current) if current in items else 0,
                                        True)
        if not ok or not name.strip():
            return
        if for_selection:
            ctl.set_label(name)
        else:
            self.commands.accept(name.strip())

    def show_cheat_sheet(self) -> None:
        CheatSheetDialog(self.shortcuts, self).exec()

    def show_error(self, message: str, modal: bool = False) -> None:
        """Problems during labelling go to the status bar (no box to click away mid-flow); problems
        opening a project also get a dialog."""
        self.status.message(message, 12000)
        if modal and self.isVisible() and not self.settings.value("ui/quiet_errors", False, type=bool):
            QMessageBox.warning(self, "seem-annotator", message)

    def export(self) -> None:
        export_interactive(self)

    def choose_backend(self) -> None:
        self.model.choose_backend()

    def start_segment_everything(self) -> None:
        self.model.segment_everything()


class _NoHost:
    """Tool host before a project is open: gestures do nothing."""

    positive = True
    stroke_width = 8.0
    brush_width = 12.0

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


