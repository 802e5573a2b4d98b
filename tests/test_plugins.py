"""Plugin discovery (folders, entry points, broken plugins skipped) and the shipped YOLO / PNG plugins."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from test_formats_common import by_id, make_dataset

from seem_annotator.core import geometry, masks
from seem_annotator.formats.base import Exporter, ExportResult
from seem_annotator.formats.registry import PluginRegistry, discover

# pycocotools' decode uses a numpy-1 `__array__` idiom that numpy 2 flags on every call; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

GOOD = '''
from seem_annotator.formats.base import Exporter, ExportResult

class Txt(Exporter):
    name = "txt"
    output = "file"
    def export(self, dataset, out, options, progress=None):
        out.write_text(str(len(dataset.annotations)))
        return ExportResult(files=[out])

def register(registry):
    registry.add_exporter(Txt())
    registry.add_backend("dummy", lambda **kw: object(), "a test backend")
'''

BROKEN = {
    "syntax_error.py": "def register(registry)\n    pass\n",
    "import_error.py": "import not_a_module_anywhere_xyz\n",
    "no_register.py": "X = 1\n",
    "raises.py": "def register(registry):\n    registry.add_exporter(__import__('test_plugins_half').Half())\n",
    "not_exporter.py": "def register(registry):\n    registry.add_exporter(object())\n",
    "exits.py": "import sys\nsys.exit(3)\n",
    "half.py": ("from seem_annotator.formats.base import Exporter\n"
                "class H(Exporter):\n    name = 'half'\n    def export(self, *a):\n        pass\n"
                "def register(registry):\n    registry.add_exporter(H())\n    raise RuntimeError('boom after adding')\n"),
}


def test_broken_plugins_are_reported_and_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "good.py").write_text(GOOD)
    (folder / "_private.py").write_text("raise RuntimeError('never loaded')\n")
    for name, text in BROKEN.items():
        (folder / name).write_text(text)
    registry = discover([folder], include_user=False, include_entry_points=False)
    # built-ins and the shipped plugins are all there, the good user plugin too
    assert {"coco", "labelme", "yolo", "png", "txt"} <= set(registry.exporters)
    assert {"coco", "labelme"} <= set(registry.importers)
    assert registry.backends["dummy"].description == "a test backend"
    failed = {Path(p.source).name: p.message for p in registry.errors}
    assert set(failed) == set(BROKEN)
    assert "SyntaxError" in failed["syntax_error.py"]
    assert "ModuleNotFoundError" in failed["import_error.py"]
    assert "no register" in failed["no_register.py"]
    assert "SystemExit" in failed["exits.py"]
    assert "RuntimeError: boom after adding" in failed["half.py"]
    assert "half" not in registry.exporters  # a failing register keeps nothing it added
    assert all(line.startswith("plugin ") and "skipped" in line for line in registry.problems())


def test_entry_point_objects(tmp_path: Path) -> None:
    class Csv(Exporter):
        name = "csv"

        def export(self, dataset, out, options, progress=None) -> ExportResult:
            return ExportResult()

    registry = PluginRegistry()
    assert registry.load_module_object("ep class", Csv)
    module = types.SimpleNamespace(register=lambda reg: reg.add_exporter(Csv()))
    assert registry.load_module_object("ep module", module)
    assert not registry.load_module_object("ep junk", 42)
    assert "csv" in registry.exporters and registry.errors[0].source == "ep junk"
    assert any("replaces" in w for w in registry.warnings)
    with pytest.raises(Exception, match="unknown export format 'nope'; available: csv"):
        registry.exporter("nope")


def test_yolo_plugin(tmp_path: Path) -> None:
    registry = discover(include_user=False, include_entry_points=False)
    ds = make_dataset(tmp_path / "images")
    out = tmp_path / "yolo"
    result = registry.exporter("yolo").export(ds, out, {"yolo_images": "link"})
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "cat", 1: "dog", 2: "unused"} and data["label_ids"] == {0: 3, 1: 7, 2: 9}
    assert data["train"] == "images" and Path(data["path"]) == out.resolve()
    assert any("holes" in w for w in result.warnings)
    lines = (out / "labels" / "sub dir" / "b c.txt").read_text().splitlines()
    assert len(lines) == 2  # two parts of one object -> one polygon line each
    obj = masks.decode(by_id(ds)[12].rle)
    polys = []
    for line in lines:
        cls, *vals = line.split()
        assert cls == "0"
        xy = np.array(vals, dtype=float).reshape(-1, 2)
        assert (xy >= 0).all() and (xy <= 1).all()
        polys.append(xy * [80, 60])
    assert masks.mask_iou(geometry.rings_to_mask(polys, 60, 80), obj) >= 0.98
    assert (out / "images" / "sub dir" / "b c.png").read_bytes() == (tmp_path / "images" / "sub dir" /
                                                                    "b c.png").read_bytes()
    assert sorted(p.name for p in (out / "labels").glob("*.txt")) == ["a.txt", "rot.txt"]


def test_png_plugin(tmp_path: Path) -> None:
    registry = discover(include_user=False, include_entry_points=False)
    ds = make_dataset(tmp_path / "images")
    out = tmp_path / "png"
    registry.exporter("png").export(ds, out, {})
    palette = json.loads((out / "palette.json").read_text())
    assert [(c["class_index"], c["label_id"], c["name"]) for c in palette["classes"]] == \
        [(1, 3, "cat"), (2, 7, "dog"), (3, 9, "unused")]
    with Image.open(out / "semantic" / "a.png") as sem:
        assert sem.mode == "P"
        assert sem.getpalette()[3:6] == [200, 30, 30]
        semantic = np.asarray(sem)
    with Image.open(out / "instances" / "a.png") as ins:
        instance = np.asarray(ins)
    first, donut = (masks.decode(by_id(ds)[i].rle) for i in (10, 11))
    assert (semantic[donut] == 2).all() and (instance[donut] == 2).all()  # on top (higher order)
    assert (semantic[first & ~donut] == 1).all() and (instance[first & ~donut] == 1).all()
    assert (semantic[~(first | donut)] == 0).all() and (instance[~(first | donut)] == 0).all()
    table = json.loads((out / "instances.json").read_text())
    assert table["a.png"] == [{"instance": 1, "annotation_id": 10, "label_id": 3, "class_index": 1},
                              {"instance": 2, "annotation_id": 11, "label_id": 7, "class_index": 2}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "png"]  # no staging left behind
