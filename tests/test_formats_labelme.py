"""LabelMe: the files labelme opens (keys, shape types, mask shapes), round trips, unknown keys
kept, folder import, malformed input refused whole."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_formats_common import by_id, listing, make_dataset, write_image

from seem_annotator.core import masks
from seem_annotator.core.records import ImageRecord
from seem_annotator.errors import FormatError
from seem_annotator.formats.labelme import decode_mask_png, export_labelme
from seem_annotator.formats.labelme_read import read_labelme_folder

# pycocotools' decode uses a numpy-1 `__array__` idiom that numpy 2 flags on every call; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

SHAPE_KEYS = {"label", "points", "group_id", "description", "shape_type", "flags"}


def test_export_writes_labelme_documents(tmp_path: Path) -> None:
    root = tmp_path / "images"
    ds = make_dataset(root)
    result = export_labelme(ds, root)
    assert sorted(p.relative_to(root).as_posix() for p in result.files) == ["a.json", "rot.json",
                                                                             "sub dir/b c.json"]
    doc = json.loads((root / "a.json").read_text())
    assert {"version", "flags", "shapes", "imagePath", "imageData", "imageHeight", "imageWidth"} <= set(doc)
    assert doc["imagePath"] == "a.png" and doc["imageData"] is None
    assert (doc["imageWidth"], doc["imageHeight"]) == (96, 64)
    polygon, donut = doc["shapes"]
    assert SHAPE_KEYS <= set(polygon) and polygon["shape_type"] == "polygon" and polygon["label"] == "cat"
    assert len(polygon["points"]) >= 3 and all(len(p) == 2 for p in polygon["points"])
    # the object with a hole is a mask shape: 2 points = inclusive bbox, base64 PNG of that crop
    assert donut["shape_type"] == "mask" and donut["label"] == "dog" and len(donut["points"]) == 2
    (x1, y1), (x2, y2) = donut["points"]
    crop = decode_mask_png(donut["mask"], "test")
    assert crop.shape == (y2 - y1 + 1, x2 - x1 + 1)
    with Image.open(io.BytesIO(base64.b64decode(donut["mask"]))) as png:
        assert png.format == "PNG" and png.mode == "L"
    full = masks.decode(by_id(ds)[11].rle)
    np.testing.assert_array_equal(crop, full[int(y1):int(y2) + 1, int(x1):int(x2) + 1])
    # two parts share a group_id
    parts = json.loads((root / "sub dir" / "b c.json").read_text())["shapes"]
    assert len(parts) == 2 and parts[0]["group_id"] is not None and parts[0]["group_id"] == parts[1]["group_id"]
    assert json.loads((root / "rot.json").read_text())["imageWidth"] == 72  # after EXIF orientation


def test_box_shaped_object_is_a_rectangle(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "images")
    box = np.zeros((64, 96), bool)
    box[10:20, 30:55] = True
    ds.annotations[0].rle = masks.encode(box)
    export_labelme(ds, tmp_path / "out")
    shape = json.loads((tmp_path / "out" / "a.json").read_text())["shapes"][0]
    assert shape["shape_type"] == "rectangle" and shape["points"] == [[30.0, 10.0], [55.0, 20.0]]
    back = read_labelme_folder(tmp_path)
    assert by_id(back)[10].rle == ds.annotations[0].rle


def test_stale_file_of_ours_is_emptied_others_untouched(tmp_path: Path) -> None:
    root = tmp_path / "images"
    ds = make_dataset(root)
    export_labelme(ds, root)
    (root / "foreign.png").write_bytes((root / "a.png").read_bytes())
    foreign = {"version": "5.0.1", "flags": {}, "shapes": [], "imagePath": "foreign.png", "imageData": None}
    (root / "foreign.json").write_text(json.dumps(foreign))
    ds.images.append(ImageRecord(id=4, file_name="foreign.png", width=96, height=64))
    ds.annotations = [a for a in ds.annotations if a.image_id != 1]  # every object on a.png deleted
    export_labelme(ds, root)
    assert json.loads((root / "a.json").read_text())["shapes"] == []  # not left showing deleted objects
    assert json.loads((root / "foreign.json").read_text()) == foreign  # another tool's file: untouched


def test_holes_as_polygons_warns(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "images")
    result = export_labelme(ds, tmp_path / "out", holes="polygons")
    assert any("holes" in w and "11" in w for w in result.warnings)
    doc = json.loads((tmp_path / "out" / "a.json").read_text())
    assert [s["shape_type"] for s in doc["shapes"]] == ["polygon", "polygon"]
    assert doc["imagePath"] == "../images/a.png"


def test_round_trip_keeps_masks_labels_ids(tmp_path: Path) -> None:
    root = tmp_path / "images"
    ds = make_dataset(root)
    export_labelme(ds, root / "labels")
    back = read_labelme_folder(root)
    assert sorted((lab.id, lab.name, lab.color) for lab in back.labels) == \
        sorted((lab.id, lab.name, lab.color) for lab in ds.labels)  # the unused label too
    assert sorted((im.id, im.file_name, im.width, im.height) for im in back.images) == \
        sorted((im.id, im.file_name, im.width, im.height) for im in ds.images)
    src = by_id(ds)
    assert sorted(by_id(back)) == sorted(src)
    for ann in back.annotations:
        orig = src[ann.id]
        assert (ann.image_id, ann.label_id, ann.score, ann.order) == (orig.image_id, orig.label_id, orig.score,
                                                                      orig.order)
        if ann.id == 11:
            assert ann.rle == orig.rle  # mask shape: identical
        else:
            assert masks.iou(ann.rle, orig.rle) >= 0.98


HAND_WRITTEN = {
    "version": "5.4.1",
    "flags": {"reviewed": True},
    "shapes": [
        {"label": "car", "points": [[2, 2], [20, 3], [18, 15], [3, 14]], "group_id": None, "description": "red",
         "shape_type": "polygon", "flags": {"occluded": False}, "confidence": 0.9},
        {"label": "sign", "points": [[30, 5], [22, 12]], "group_id": 4, "description": "",
         "shape_type": "rectangle", "flags": {}},
        {"label": "nose", "points": [[12.5, 20.5]], "group_id": None, "description": "",
         "shape_type": "point", "flags": {}},
        {"label": "wheel", "points": [[8, 24], [12, 24]], "group_id": None, "description": "",
         "shape_type": "circle", "flags": {}},
        {"label": "sign", "points": [[33, 20], [36, 22]], "group_id": 4, "description": "",
         "shape_type": "rectangle", "flags": {}},
    ],
    "imagePath": "pic.png",
    "imageData": None,
    "imageHeight": 32,
    "imageWidth": 40,
    "reviewer": "ann",
}


def _hand_written_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "lm"
    write_image(folder / "pic.png", 40, 32)
    crop = np.zeros((4, 5), np.uint8)
    crop[1:3, 1:4] = 1
    buffer = io.BytesIO()
    Image.fromarray(crop).save(buffer, format="PNG")
    doc = json.loads(json.dumps(HAND_WRITTEN))
    doc["shapes"].append({"label": "stain", "points": [[25, 25], [29, 28]], "group_id": None, "description": "",
                          "shape_type": "mask", "flags": {}, "mask": base64.b64encode(buffer.getvalue()).decode()})
    (folder / "pic.json").write_text(json.dumps(doc, indent=2))
    return folder


def test_import_shapes_and_unknown_keys_survive(tmp_path: Path) -> None:
    folder = _hand_written_folder(tmp_path)
    ds = read_labelme_folder(folder)
    assert [im.file_name for im in ds.images] == ["pic.png"]
    names = {lab.id: lab.name for lab in ds.labels}
    got = {names[a.label_id]: masks.decode(a.rle) for a in ds.annotations}
    assert sorted(got) == ["car", "sign", "stain", "wheel"]  # the point has no area: kept, not an object
    sign = got["sign"]  # two rectangles with one group_id: one object in two parts
    assert sign[6:12, 22:30].all() and sign[20:22, 33:36].all() and sign.sum() == 8 * 7 + 3 * 2
    stain = got["stain"]
    assert stain.sum() == 6 and stain[26:28, 26:29].all()
    assert got["wheel"][24, 10] and not got["wheel"][24, 16]
    export_labelme(ds, tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "pic.json").read_text())
    assert doc["reviewer"] == "ann" and doc["flags"] == {"reviewed": True} and doc["version"] == "5.4.1"
    assert doc["imagePath"] == "../lm/pic.png"
    shapes = doc["shapes"]
    car = next(s for s in shapes if s["label"] == "car")
    assert car["confidence"] == 0.9 and car["description"] == "red" and car["points"] == HAND_WRITTEN["shapes"][0]["points"]
    rects = [s for s in shapes if s["label"] == "sign"]
    assert [r["shape_type"] for r in rects] == ["rectangle", "rectangle"] and {r["group_id"] for r in rects} == {4}
    assert [s for s in shapes if s["shape_type"] == "point"][0]["points"] == [[12.5, 20.5]]
    # after the round trip the same folder reads back to the same objects
    (tmp_path / "out" / "pic.json").replace(folder / "pic.json")
    again = read_labelme_folder(folder)
    assert sorted(a.rle["counts"] for a in again.annotations) == sorted(a.rle["counts"] for a in ds.annotations)


def test_edited_object_is_rewritten_from_its_mask(tmp_path: Path) -> None:
    folder = _hand_written_folder(tmp_path)
    ds = read_labelme_folder(folder)
    car = next(a for a in ds.annotations if a.extra["labelme"]["shapes"][0]["label"] == "car")
    m = masks.decode(car.rle)
    m[20:26, 2:8] = True  # an edit after import
    car.rle = masks.encode(m)
    export_labelme(ds, tmp_path / "out")
    shapes = json.loads((tmp_path / "out" / "pic.json").read_text())["shapes"]
    new_car = [s for s in shapes if s["label"] == "car"]
    assert new_car and new_car[0]["points"] != HAND_WRITTEN["shapes"][0]["points"]
    assert new_car[0]["description"] == "red" and new_car[0]["confidence"] == 0.9  # carried over


def _lm_doc(**changes: object) -> dict:
    doc = {"version": "5.5.0", "flags": {}, "imagePath": "p.png", "imageData": None, "imageHeight": 16,
           "imageWidth": 16, "shapes": [{"label": "a", "points": [[1, 1], [8, 1], [8, 8]], "group_id": None,
                                         "description": "", "shape_type": "polygon", "flags": {}}]}
    doc.update(changes)
    return doc


BAD = {
    "outside": ({"imagePath": "../../etc/p.png"}, "outside"),
    "missing image": ({"imagePath": "nope.png"}, "not found"),
    "no shapes": ({"shapes": None}, "no 'shapes' list"),
    "bad points": ({"shapes": [{"label": "a", "points": [[1, "x"]], "shape_type": "polygon"}]}, "points"),
    "short polygon": ({"shapes": [{"label": "a", "points": [[1, 1], [2, 2]], "shape_type": "polygon"}]},
                      "at least 3 points"),
    "rectangle points": ({"shapes": [{"label": "a", "points": [[1, 1]], "shape_type": "rectangle"}]},
                         "exactly 2 points"),
    "bad mask": ({"shapes": [{"label": "a", "points": [[1, 1], [3, 3]], "shape_type": "mask",
                              "mask": "not base64 png"}]}, "base64 PNG"),
    "no label": ({"shapes": [{"points": [[1, 1], [8, 1], [8, 8]]}]}, "no label"),
    "size mismatch": ({"imageWidth": 17}, "after EXIF"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_labelme_refused_whole(tmp_path: Path, case: str) -> None:
    folder = tmp_path / "lm"
    write_image(folder / "p.png", 16, 16)
    (folder / "good.json").write_text(json.dumps(_lm_doc()))
    write_image(folder / "q.png", 16, 16)
    changes, message = BAD[case]
    (folder / "zz_bad.json").write_text(json.dumps(_lm_doc(**{"imagePath": "q.png", **changes})))
    before = listing(folder)
    with pytest.raises(FormatError, match=message):
        read_labelme_folder(folder)
    assert listing(folder) == before
    (folder / "zz_bad.json").unlink()
    assert len(read_labelme_folder(folder).annotations) == 1  # the rest alone is valid


def test_truncated_json_and_empty_folder(tmp_path: Path) -> None:
    folder = tmp_path / "lm"
    write_image(folder / "p.png", 16, 16)
    with pytest.raises(FormatError, match="no LabelMe"):
        read_labelme_folder(folder)
    (folder / "coco.json").write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    with pytest.raises(FormatError, match="not LabelMe files"):
        read_labelme_folder(folder)
    (folder / "p.json").write_text(json.dumps(_lm_doc()))
    ds = read_labelme_folder(folder)  # another tool's JSON beside LabelMe files is skipped, with a note
    assert len(ds.annotations) == 1 and ds.extra["warnings"] == ["coco.json is not a LabelMe file; skipped"]
    (folder / "p.json").write_text(json.dumps(_lm_doc())[:50])
    with pytest.raises(FormatError, match="not valid JSON"):
        read_labelme_folder(folder)


def test_real_mval_subset_through_labelme(shared_data: Path, tmp_path: Path) -> None:
    from seem_annotator.formats.coco import read_coco

    source = shared_data / "COCO_MVal_subset"
    (tmp_path / "img").symlink_to(source / "img", target_is_directory=True)
    ds = read_coco(source / "instances_mval_subset.json", tmp_path)
    result = export_labelme(ds, tmp_path / "labels")
    assert result.counts["files"] == 80
    kinds = [s["shape_type"] for f in result.files for s in json.loads(f.read_text())["shapes"]]
    assert "mask" in kinds and kinds.count("polygon") > 70
    back = read_labelme_folder(tmp_path)
    src = by_id(ds)
    assert sorted(by_id(back)) == sorted(src)
    names = {im.id: im.file_name for im in back.images}
    src_names = {im.id: im.file_name for im in ds.images}
    for ann in back.annotations:
        orig = src[ann.id]
        assert names[ann.image_id] == src_names[orig.image_id] and ann.label_id == orig.label_id
        assert masks.iou(ann.rle, orig.rle) >= 0.98


def test_image_level_keys_survive_a_project(tmp_path: Path) -> None:
    # The project scans pic.png before the import, so the import must merge, not drop, the image's
    # LabelMe-level fields (flags, unknown keys).
    from seem_annotator.core.project import Project

    folder = _hand_written_folder(tmp_path)
    with Project.create(folder, store_path=tmp_path / "store" / "project.sqlite") as project:
        assert [im.file_name for im in project.images()] == ["pic.png"]
        project.import_dataset(read_labelme_folder(folder))
        export_labelme(project.snapshot(), tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "pic.json").read_text())
    assert doc["reviewer"] == "ann" and doc["flags"] == {"reviewed": True}
