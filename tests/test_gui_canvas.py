"""Canvas, tools and small GUI parts on their own: coordinates under zoom, the prompts each tool
makes from real mouse events, overlays, vertex editing, shortcuts, and the no-display error."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import copy_samples
from PySide6.QtCore import QSettings, Qt
from PySide6.QtTest import QTest

from seem_annotator.core.prompts import BoxPrompt, PointPrompt, PolygonPrompt, StrokePrompt
from seem_annotator.gui import overlays
from seem_annotator.gui.canvas import AnnotationView, ImageCanvas
from seem_annotator.gui.edit_tools import TOOL_CLASSES

pytestmark = pytest.mark.timeout(60)


class RecordingHost:
    """A tool host that records what the tools hand over."""

    positive = True
    stroke_width = 6.0
    brush_width = 10.0

    def __init__(self) -> None:
        self.prompts: list = []
        self.brushes: list = []
        self.polygons: list = []
        self.selected: list = []
        self.references: list = []
        self.target: np.ndarray | None = None
        self.edited: list = []

    def add_prompt(self, prompt) -> None:
        self.prompts.append(prompt)

    def brush_edit(self, points, width, erase) -> None:
        self.brushes.append((points, width, erase))

    def manual_polygon(self, points) -> None:
        self.polygons.append(points)

    def select_annotation(self, ann_id, add=False) -> None:
        self.selected.append((ann_id, add))

    def set_reference_region(self, mask) -> None:
        self.references.append(mask)

    def vertex_edit_target(self):
        return self.target

    def vertex_edit(self, mask) -> None:
        self.edited.append(mask)


@pytest.fixture
def canvas(qtbot):
    view = ImageCanvas()
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    qtbot.waitExposed(view)
    rgb = np.zeros((300, 400, 3), np.uint8)
    rgb[:, :, 1] = 120
    view.set_image(overlays.rgb_to_qimage(rgb), (300, 400))
    return view


def use(canvas, name: str, host: RecordingHost):
    cls = next(c for c in TOOL_CLASSES if c.name == name)
    tool = cls(canvas, host)
    canvas.tool = tool
    tool.activate()
    return tool


def at(canvas, x: float, y: float):
    return canvas.mapFromScene(x, y)


def test_zoom_keeps_image_coordinates(canvas) -> None:
    fitted = canvas.zoom()
    assert 1.5 < fitted < 2.1  # 400x300 fitted into ~800x600
    canvas.zoom_in()
    assert canvas.zoom() == pytest.approx(fitted * 1.25)
    host = RecordingHost()
    use(canvas, "point", host)
    QTest.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(canvas, 123, 77))
    p = host.prompts[-1]
    assert isinstance(p, PointPrompt) and p.positive
    assert abs(p.x - 123) < 1 and abs(p.y - 77) < 1
    canvas.fit_to_window()
    assert canvas.zoom() == pytest.approx(fitted)


def test_point_polarity_box_polygon_stroke(canvas) -> None:
    host = RecordingHost()
    vp = canvas.viewport()
    use(canvas, "point", host)
    QTest.mouseClick(vp, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, at(canvas, 50, 50))
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, at(canvas, 60, 50))
    host.positive = False  # voice "remove": the left button now removes, right adds
    QTest.mouseClick(vp, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, at(canvas, 70, 50))
    host.positive = True
    assert [p.positive for p in host.prompts] == [False, False, True]

    use(canvas, "box", host)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(canvas, 200, 150))
    QTest.mouseMove(vp, at(canvas, 150, 100))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(canvas, 100, 50))
    box = host.prompts[-1]
    assert isinstance(box, BoxPrompt) and box.x0 < box.x1 and abs(box.x0 - 100) < 1 and abs(box.y1 - 150) < 1

    tool = use(canvas, "polygon", host)
    for x, y in ((10, 10), (100, 10), (100, 100)):
        QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(canvas, x, y))
    assert tool.busy()
    tool.key(Qt.Key.Key_Backspace)
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(canvas, 90, 90))
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(canvas, 10, 90))
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(canvas, 10.5, 10.5))
    poly = host.prompts[-1]
    assert isinstance(poly, PolygonPrompt) and len(poly.points) == 4 and not tool.busy()

    use(canvas, "stroke", host)
    QTest.mousePress(vp, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, at(canvas, 20, 200))
    for x in range(30, 120, 10):
        QTest.mouseMove(vp, at(canvas, x, 200))
    QTest.mouseRelease(vp, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier, at(canvas, 120, 200))
    stroke = host.prompts[-1]
    assert isinstance(stroke, StrokePrompt) and not stroke.positive and stroke.width == 6.0
    assert len(stroke.points) >= 5


def test_eraser_and_reference_and_select(canvas) -> None:
    host = RecordingHost()
    vp = canvas.viewport()
    use(canvas, "eraser", host)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(canvas, 20, 20))
    QTest.mouseMove(vp, at(canvas, 40, 20))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(canvas, 40, 20))
    assert host.brushes[-1][2] is True and host.brushes[-1][1] == 10.0

    use(canvas, "referring", host)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(canvas, 50, 50))
    for x, y in ((150, 50), (150, 150), (50, 150)):
        QTest.mouseMove(vp, at(canvas, x, y))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(canvas, 50, 150))
    region = host.references[-1]
    assert region.shape == (300, 400) and region[100, 100] and not region[200, 200]

    mask = np.zeros((300, 400), bool)
    mask[100:200, 250:350] = True
    canvas.set_annotations([AnnotationView(7, mask, (255, 0, 0), "box")])
    use(canvas, "select", host)
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(canvas, 300, 150))
    QTest.mouseClick(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, at(canvas, 10, 10))
    assert host.selected == [(7, False), (None, True)]
    QTest.mouseMove(vp, at(canvas, 300, 150))
    assert canvas.hover_id == 7


def test_outlines_are_kept_for_unchanged_annotations(canvas) -> None:
    a = np.zeros((300, 400), bool)
    a[10:50, 10:60] = True
    b = np.zeros((300, 400), bool)
    b[100:200, 250:350] = True
    canvas.set_annotations([AnnotationView(1, a, (255, 0, 0), "a"), AnnotationView(2, b, (0, 255, 0), "b")])
    first = dict(canvas._paths)
    edited = b.copy()
    edited[100:150, 250:300] = False
    canvas.set_annotations([AnnotationView(1, a, (255, 0, 0), "a"), AnnotationView(2, edited, (0, 255, 0), "b")])
    assert canvas._paths[1] is first[1]  # same mask object: the outline is reused
    assert canvas._paths[2] is not first[2]  # an edited mask gets a new outline
    assert canvas._paths[2].boundingRect() == overlays.outline_path(edited, canvas.display_scale).boundingRect()
    canvas.set_annotations([AnnotationView(2, edited, (0, 255, 0), "b")])
    assert set(canvas._paths) == {2}


def test_vertex_editing_keeps_holes(canvas) -> None:
    host = RecordingHost()
    mask = np.zeros((300, 400), bool)
    mask[50:250, 50:250] = True
    mask[120:180, 120:180] = False  # a hole
    host.target = mask
    tool = use(canvas, "vertices", host)
    assert len(tool._rings) == 2 and tool._is_hole == [False, True]
    # Drag the outer ring's vertex nearest (50, 50) out to (20, 20).
    r, v = min(((r, v) for r, ring in enumerate(tool._rings) if not tool._is_hole[r] for v in range(len(ring))),
               key=lambda rv: np.hypot(*(tool._rings[rv[0]][rv[1]] - (50, 50))))
    start = tool._rings[r][v]
    vp = canvas.viewport()
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(canvas, *start))
    QTest.mouseMove(vp, at(canvas, 35, 35))
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(canvas, 20, 20))
    edited = host.edited[-1]
    assert edited[30, 30] and not edited[150, 150]  # grew at the corner, hole still there
    assert overlays.mask_polygons(edited)[1], "the hole survives the edit"


def test_overlay_helpers() -> None:
    mask = np.zeros((40, 60), bool)
    mask[10:30, 20:50] = True
    small = overlays.to_display(mask, (20, 30))
    assert small.shape == (20, 30) and small[10, 17] and not small[0, 0]
    rgba = overlays.compose_rgba([(small, (10, 20, 30))], (20, 30), 0.5)
    assert tuple(rgba[10, 17]) == (10, 20, 30, 128) and rgba[0, 0, 3] == 0
    path = overlays.outline_path(small, scale=2.0)
    assert path.boundingRect().width() == pytest.approx(2 * (24 - 10), abs=1)  # pixel centres 10..24
    stroke = overlays.paint_stroke((40, 60), [(5, 5), (25, 5)], 4)
    assert stroke[5, 15] and not stroke[20, 15]
    image = overlays.rgb_to_qimage(np.full((5, 7, 3), 200, np.uint8))
    assert (image.width(), image.height()) == (7, 5) and image.pixelColor(3, 3).red() == 200


def test_compose_crop_paints_each_layer_over_its_own_box_in_order() -> None:
    rng = np.random.default_rng(2)
    layers = []
    for color in ((255, 0, 0), (0, 255, 0), (0, 0, 255), (9, 9, 9)):
        m = np.zeros((50, 70), bool)
        y, x = (int(v) for v in rng.integers(0, 40, 2))
        m[y:y + 12, x:x + 25] = rng.random((12, 25)) < 0.7
        layers.append((np.asfortranarray(m) if color[0] == 9 else m, color))
    layers.append((np.zeros((50, 70), bool), (1, 2, 3)))  # an empty layer changes nothing
    rgba, x0, y0 = overlays.compose_crop(layers, 0.4)
    full = overlays.compose_rgba(layers, (50, 70), 0.4)
    h, w = rgba.shape[:2]
    np.testing.assert_array_equal(rgba, full[y0:y0 + h, x0:x0 + w])
    assert not full[:y0].any() and not full[y0 + h:].any() and not full[:, :x0].any() and not full[:, x0 + w:].any()
    assert overlays.compose_crop([(np.zeros((5, 5), bool), (1, 1, 1))], 0.5) is None


def test_shortcuts_are_unique_and_configurable(qtbot, tmp_path) -> None:
    from PySide6.QtWidgets import QWidget

    from seem_annotator.gui.shortcuts import ACTIONS, ShortcutManager

    owner = QWidget()
    qtbot.addWidget(owner)
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    manager = ShortcutManager(owner, settings)
    for spec in ACTIONS:
        manager.bind(spec.id, lambda: None)
    assert manager.conflicts() == {}
    assert all(manager.actions[spec.id].shortcuts() for spec in ACTIONS)
    manager.set_sequences("accept", ["Ctrl+J"])
    again = ShortcutManager(QWidget(), settings)
    assert [s.toString() for s in again.sequences("accept")] == ["Ctrl+J"]
    manager.reset()
    assert [s.toString() for s in manager.actions["accept"].shortcuts()] == ["Return", "Enter"]


def test_gui_command_without_display_is_a_clear_error(monkeypatch) -> None:
    import argparse

    from seem_annotator.cli import gui_command
    from seem_annotator.errors import UserError
    from seem_annotator.gui.app import display_problem

    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert "no graphical display" in display_problem()
    parser = argparse.ArgumentParser()
    gui_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["gui", "/nonexistent", "--store", "/tmp/x"])
    # cli.main prints a UserError as one line and exits 2: no Qt abort, no traceback.
    with pytest.raises(UserError, match="Cannot start the desktop app: no graphical display.*xvfb-run"):
        args.func(args)
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert display_problem() is None


def test_image_list_filter_search_and_neighbours(qtbot, tmp_path) -> None:
    from seem_annotator.core.records import ImageRecord
    from seem_annotator.gui.image_list import ImageListPanel

    panel = ImageListPanel()
    qtbot.addWidget(panel)
    images = [ImageRecord(1, "a/cat.jpg", 10, 10, status="done"), ImageRecord(2, "a/dog.jpg", 10, 10),
              ImageRecord(3, "b/cat2.jpg", 10, 10, status="in_progress"),
              ImageRecord(4, "b/bad.jpg", 0, 0, readable=False, error="truncated")]
    panel.set_images(images, tmp_path)  # files do not exist: thumbnails are skipped, names stay
    assert panel.visible_ids() == [1, 2, 3, 4]
    assert panel.neighbour(2, +1) == 3 and panel.neighbour(4, +1) == 4 and panel.neighbour(1, -1) == 1
    panel.search.setText("cat")
    assert panel.visible_ids() == [1, 3]
    assert panel.neighbour(1, +1) == 3
    panel.search.clear()
    panel.filter.setCurrentText("Done")
    assert panel.visible_ids() == [1]
    panel.filter.setCurrentText("Unreadable")
    assert panel.visible_ids() == [4]
    panel.filter.setCurrentIndex(0)
    images[1].status = "done"
    panel.update_image(images[1])
    panel.filter.setCurrentText("Done")
    assert panel.visible_ids() == [1, 2]
    chosen = []
    panel.image_chosen.connect(chosen.append)
    panel.list.setCurrentItem(panel.list.item(1))  # as a click or Up/Down does
    assert chosen == [2]


def test_project_store_in_a_chosen_location_and_recent_list(tmp_path) -> None:

    from seem_annotator.gui import project_open

    images = tmp_path / "images"
    copy_samples(images)
    store_dir = tmp_path / "elsewhere"
    project = project_open.open_project(images, store_dir)
    try:
        assert project.store_path == (store_dir / "project.sqlite").resolve()
        assert not (images / ".seem-annotator").exists()  # nothing written beside the images
        assert len(project.images()) == 4
        project.add_label("cat")
    finally:
        project.close()
    again = project_open.open_project(images, store_dir)  # reopened, never recreated
    try:
        assert [label.name for label in again.labels()] == ["cat"]
    finally:
        again.close()
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    project_open.remember_project(settings, str(images), str(store_dir))
    project_open.remember_project(settings, "/other")
    project_open.remember_project(settings, str(images), str(store_dir))
    recent = project_open.recent_projects(settings)
    assert [project_open.split_recent(e) for e in recent] == [(str(images), str(store_dir)), ("/other", None)]


def test_export_dialog_lists_every_format_with_its_options(qtbot, tmp_path) -> None:
    from seem_annotator.gui.export_dialog import ExportDialog
    from seem_annotator.gui.export_flow import exporters

    available = exporters()
    assert {"coco", "labelme"} <= set(available)
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    dialog = ExportDialog(available, tmp_path, settings=settings)
    qtbot.addWidget(dialog)
    names = [dialog.format.itemData(i) for i in range(dialog.format.count())]
    assert names[:2] == ["coco", "labelme"] and set(names) == set(available)
    dialog.format.setCurrentIndex(names.index("coco"))
    assert dialog.output_path() == tmp_path / "exports" / "coco.json"
    assert "rle" in dialog.options() and dialog.options()["rle"] is False
    dialog._checks["rle"].setChecked(True)
    assert dialog.options()["rle"] is True
    # the dialog says which root a reader joins file names with, and offers the other convention
    assert f"relative to the images folder {tmp_path}" in dialog.note.text() and "--images" in dialog.note.text()
    assert dialog.options()["paths_relative_to_output"] is False
    dialog.format.setCurrentIndex(names.index("labelme"))
    assert dialog.output_path() == tmp_path / "exports" / "labelme"
    dialog.path.setText(str(tmp_path / "mine"))
    dialog.remember()
    again = ExportDialog(available, tmp_path, settings=settings)
    qtbot.addWidget(again)
    assert again.exporter.name == "labelme" and again.output_path() == tmp_path / "mine"
    # Found under Xvfb: another project's export offered the first project's remembered file, so
    # exporting it would have overwritten that one. The remembered output is per project.
    other = tmp_path / "other"
    other.mkdir()
    elsewhere = ExportDialog(available, other, settings=settings)
    qtbot.addWidget(elsewhere)
    assert elsewhere.exporter.name == "labelme" and elsewhere.output_path() == other / "exports" / "labelme"


def test_cheat_sheet_lists_and_edits_shortcuts(qtbot, tmp_path) -> None:
    from PySide6.QtGui import QKeySequence
    from PySide6.QtWidgets import QWidget

    from seem_annotator.gui.shortcuts import ACTIONS, CheatSheetDialog, ShortcutManager

    owner = QWidget()
    qtbot.addWidget(owner)
    manager = ShortcutManager(owner, QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    for spec in ACTIONS:
        manager.bind(spec.id, lambda: None)
    dialog = CheatSheetDialog(manager)
    qtbot.addWidget(dialog)
    assert dialog.table.rowCount() == len(ACTIONS)
    texts = {dialog.table.item(r, 1).text() for r in range(dialog.table.rowCount())}
    assert "Accept object" in texts and "Undo" in texts
    dialog._editors["undo"].setKeySequence(QKeySequence("Alt+U"))
    dialog._changed("undo")
    assert [s.toString() for s in manager.actions["undo"].shortcuts()] == ["Alt+U"]
    dialog._restore()
    assert [s.toString() for s in manager.actions["undo"].shortcuts()] == ["Ctrl+Z"]


def test_outlines_have_a_contrasting_halo_under_the_label_colour(canvas) -> None:
    from PySide6.QtWidgets import QGraphicsPathItem

    a = np.zeros((300, 400), bool)
    a[10:50, 10:60] = True
    orange, navy = (255, 140, 0), (20, 30, 140)
    canvas.set_annotations([AnnotationView(1, a, orange, "suit"), AnnotationView(2, a.copy(), navy, "flag")])
    paths = sorted((item for item in canvas._outline_items if isinstance(item, QGraphicsPathItem)),
                   key=lambda item: item.zValue())
    pens = {(item.pen().color().getRgb()[:3], item.pen().widthF()) for item in paths}
    assert ((0, 0, 0), 3.5) in pens and ((255, 255, 255), 3.5) in pens  # halos: black under orange, white under navy
    assert (orange, 1.5) in pens and (navy, 1.5) in pens
    assert all(item.zValue() < 2.0 for item in paths if item.pen().widthF() == 3.5)  # the halo is underneath
