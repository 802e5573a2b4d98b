"""`seem-annotator import|export|info` through `main(argv)` (and one real subprocess): round trips
project -> COCO -> project and project -> LabelMe -> project, plugin formats, clear one-line errors
that change nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_formats_common import by_id, listing, make_dataset

from seem_annotator.cli.main import main
from seem_annotator.core import masks
from seem_annotator.core.project import Project
from seem_annotator.errors import UserError
from seem_annotator.formats import registry as plugin_registry
from seem_annotator.formats.coco import export_coco

# pycocotools' decode uses a numpy-1 `__array__` idiom that numpy 2 flags on every call; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Each test discovers plugins anew, with an empty user plugins folder unless it sets one.
    monkeypatch.setenv("SEEM_ANNOTATOR_PLUGINS", str(tmp_path / "no-user-plugins"))
    monkeypatch.setattr(plugin_registry, "_DEFAULT", None)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def info(project: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    code, out, err = run(["info", "--project", str(project), "--json"], capsys)
    assert code == 0, err
    return json.loads(out)


@pytest.fixture()
def coco_source(tmp_path: Path) -> tuple[Path, Path, object]:
    images = tmp_path / "photos"
    ds = make_dataset(images)
    ann = tmp_path / "given" / "instances.json"
    export_coco(ds, ann)  # file names relative to the images root photos/
    return ann, images, ds


def test_import_info_export_round_trip(tmp_path: Path, coco_source, capsys: pytest.CaptureFixture[str]) -> None:
    ann, images, ds = coco_source
    code, out, err = run(["import", "coco", str(ann), "--images", str(images), "--project", str(images)], capsys)
    assert code == 0, err
    assert "imported 5 annotations" in out
    summary = info(images, capsys)
    assert summary["images"] == 3 and summary["annotations"] == 5 and summary["in_progress"] == 0
    assert summary["labels"] == {"cat": 3, "dog": 2, "unused": 0}

    # project -> COCO -> new project
    out_json = images / "export" / "coco.json"
    code, _, err = run(["export", "coco", "--project", str(images), "--out", str(out_json)], capsys)
    assert code == 0, err
    exported = json.loads(out_json.read_text())
    assert sorted(im["file_name"] for im in exported["images"]) == ["a.png", "rot.jpg", "sub dir/b c.png"]
    assert [c["id"] for c in exported["categories"]] == [3, 7, 9]
    second = tmp_path / "second"
    code, _, err = run(["import", "coco", str(out_json), "--images", str(images / "export"), "--project",
                        str(second)], capsys)
    assert code == 2  # the wrong image root: the files are not there, nothing imported
    assert "not found under" in err and "Traceback" not in err
    assert not (second / ".seem-annotator").exists()
    # relative to the export file on request: then the export's folder is the root to pass
    rel_json = tmp_path / "elsewhere" / "coco.json"
    code, _, err = run(["export", "coco", "--project", str(images), "--out", str(rel_json),
                        "--paths-relative-to-output"], capsys)
    assert code == 0, err
    assert sorted(im["file_name"] for im in json.loads(rel_json.read_text())["images"])[0] == "../photos/a.png"
    code, _, err = run(["import", "coco", str(rel_json), "--images", str(rel_json.parent), "--project",
                        str(second)], capsys)
    assert code == 2 and "outside the images folder" in err  # ../ leaves the root: refused, nothing imported
    assert not (second / ".seem-annotator").exists()
    # our own export, imported with --images <the images root>, round-trips
    code, _, err = run(["export", "coco", "--project", str(images), "--out", str(images / "coco.json"), "--rle"],
                       capsys)
    assert code == 0, err
    code, _, err = run(["import", "coco", str(out_json), "--images", str(images), "--project",
                        str(tmp_path / "third")], capsys)
    assert code == 0, err
    code, _, err = run(["import", "coco", str(images / "coco.json"), "--images", str(images), "--project",
                        str(second)], capsys)
    assert code == 0, err
    with Project.open(second, read_only=True) as project, Project.open(images, read_only=True) as first:
        a, b = first.snapshot(), project.snapshot()
    assert sorted((lab.id, lab.name) for lab in a.labels) == sorted((lab.id, lab.name) for lab in b.labels)
    names_a = {im.id: im.file_name for im in a.images}
    names_b = {im.id: im.file_name for im in b.images}
    key_a = sorted((names_a[x.image_id], x.label_id, x.rle["counts"]) for x in a.annotations)
    key_b = sorted((names_b[x.image_id], x.label_id, x.rle["counts"]) for x in b.annotations)
    assert key_a == key_b  # RLE: identical masks


def test_labelme_round_trip_through_projects(tmp_path: Path, coco_source,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    ann, images, ds = coco_source
    assert run(["import", "coco", str(ann), "--images", str(images), "--project", str(images)], capsys)[0] == 0
    code, out, err = run(["export", "labelme", "--project", str(images), "--out", str(images)], capsys)
    assert code == 0, err
    assert (images / "a.json").is_file() and (images / "sub dir" / "b c.json").is_file()
    other = tmp_path / "copy"
    code, out, err = run(["import", "labelme", str(images), "--project", str(other)], capsys)
    assert code == 0, err
    with Project.open(other, read_only=True) as project:
        got = project.snapshot()
    src = by_id(ds)
    names = {im.id: im.file_name for im in got.images}
    src_names = {im.id: im.file_name for im in ds.images}
    assert sorted(lab.name for lab in got.labels) == ["cat", "dog", "unused"]
    assert {lab.name: lab.id for lab in got.labels} == {lab.name: lab.id for lab in ds.labels}
    for orig in src.values():
        match = [a for a in got.annotations if names[a.image_id] == src_names[orig.image_id]
                 and a.label_id == orig.label_id and masks.iou(a.rle, orig.rle) >= 0.98]
        assert len(match) == 1, orig.id


def test_labelme_export_outside_the_images_folder_imports_with_images_root(
        tmp_path: Path, coco_source, capsys: pytest.CaptureFixture[str]) -> None:
    ann, images, ds = coco_source
    assert run(["import", "coco", str(ann), "--images", str(images), "--project", str(images)], capsys)[0] == 0
    out = tmp_path / "labelme-out"  # like labelme's --output: imagePath points back to the images
    code, _, err = run(["export", "labelme", "--project", str(images), "--out", str(out)], capsys)
    assert code == 0, err
    doc = json.loads((out / "sub dir" / "b c.json").read_text())
    assert (out / "sub dir" / doc["imagePath"]).resolve() == (images / "sub dir" / "b c.png").resolve()
    target = tmp_path / "q"
    code, _, err = run(["import", "labelme", str(out), "--project", str(target)], capsys)
    assert code == 2 and "--images" in err and "outside the images folder" in err and "Traceback" not in err
    assert not target.exists() or not (target / ".seem-annotator").exists()  # nothing half-way
    code, out_text, err = run(["import", "labelme", str(out), "--images", str(images), "--project", str(target)],
                              capsys)
    assert code == 0, err
    with Project.open(target, read_only=True) as project:
        got = project.snapshot()
        assert project.root == images.resolve()  # the images stay where they are
    assert sorted(im.file_name for im in got.images) == sorted(im.file_name for im in ds.images)
    assert len(got.annotations) == len(ds.annotations)
    # one file pointing outside the given root: the whole import is refused, nothing stored
    (out / "zz.json").write_text(json.dumps({**doc, "imagePath": "../../elsewhere.png"}))
    fresh = tmp_path / "r"
    code, _, err = run(["import", "labelme", str(out), "--images", str(images), "--project", str(fresh)], capsys)
    assert code == 2 and "zz.json" in err and "--images" in err
    assert not (fresh / ".seem-annotator").exists()


def test_plugin_formats_and_broken_user_plugin(tmp_path: Path, coco_source, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    ann, images, _ = coco_source
    user = tmp_path / "user-plugins"
    user.mkdir()
    (user / "broken.py").write_text("raise ImportError('missing dependency foo')\n")
    monkeypatch.setenv("SEEM_ANNOTATOR_PLUGINS", str(user))
    assert run(["import", "coco", str(ann), "--images", str(images), "--project", str(images)], capsys)[0] == 0
    code, out, err = run(["export", "yolo", "--project", str(images), "--out", str(tmp_path / "yolo"),
                          "--images", "none"], capsys)
    assert code == 0
    assert "warning: plugin" in err and "broken.py skipped: ImportError: missing dependency foo" in err
    assert (tmp_path / "yolo" / "data.yaml").is_file() and not (tmp_path / "yolo" / "images").exists()
    code, out, err = run(["export", "png", "--project", str(images), "--out", str(tmp_path / "png")], capsys)
    assert code == 0 and len(list((tmp_path / "png" / "semantic").rglob("*.png"))) == 3


def test_errors_are_one_line_and_change_nothing(tmp_path: Path, coco_source,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    ann, images, _ = coco_source
    assert run(["import", "coco", str(ann), "--images", str(images), "--project", str(images)], capsys)[0] == 0
    before = info(images, capsys)
    store_files = listing(images / ".seem-annotator")
    bad_cases = {
        "truncated": ann.read_text()[:200],
        "unknown category": ann.read_text().replace('"category_id": 7', '"category_id": 70'),
        "outside": ann.read_text().replace('"a.png"', '"../../x.png"'),
    }
    for name, text in bad_cases.items():
        bad = tmp_path / f"{name}.json"
        bad.write_text(text)
        code, out, err = run(["import", "coco", str(bad), "--images", str(images), "--project", str(images)], capsys)
        assert code == 2, name
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("seem-annotator: error: "), (name, err)
        assert "Traceback" not in err
    assert info(images, capsys) == before
    assert listing(images / ".seem-annotator").keys() == store_files.keys()
    code, _, err = run(["info", "--project", str(tmp_path / "nothing-here")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    target = tmp_path / "keep.json"
    target.write_text("old")
    code, _, err = run(["export", "coco", "--project", str(tmp_path / "nothing-here"), "--out", str(target)], capsys)
    assert code == 2 and target.read_text() == "old"
    with pytest.raises(UserError):  # --debug lets the exception (and its traceback) through
        main(["--debug", "info", "--project", str(tmp_path / "nothing-here")])


def test_info_text_and_real_subprocess(tmp_path: Path, coco_source, capsys: pytest.CaptureFixture[str]) -> None:
    ann, images, _ = coco_source
    assert run(["import", "coco", str(ann), "--images", str(images), "--project", str(images)], capsys)[0] == 0
    code, out, _ = run(["info", "--project", str(images)], capsys)
    assert code == 0 and "annotations  5" in out and "cat" in out
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "SEEM_ANNOTATOR_PLUGINS": str(tmp_path / "none")}
    proc = subprocess.run([sys.executable, "-m", "seem_annotator", "info", "--project", str(images), "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["annotations"] == 5


def test_scan_reports_new_and_changed_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (20, 10), (10, 20, 30)).save(folder / "a.png")
    Project.create(folder).close()
    code, out, _ = run(["scan", "--project", str(folder)], capsys)
    assert code == 0 and out.strip() == "No new or changed images."
    Image.new("RGB", (20, 10), (1, 2, 3)).save(folder / "b.png")
    Image.new("RGB", (20, 10), (200, 0, 0)).save(folder / "a.png")
    os.utime(folder / "a.png", ns=(10**18, 10**18))
    code, out, _ = run(["scan", "--project", str(folder), "--json"], capsys)
    assert code == 0 and json.loads(out) == {"added": 1, "recovered": 0, "changed": 1, "resized": 0,
                                             "missing": 0, "unreadable": 0}
    (folder / "b.png").unlink()
    code, out, _ = run(["scan", "--project", str(folder)], capsys)
    assert code == 0 and out.strip() == "Images: 1 missing."
