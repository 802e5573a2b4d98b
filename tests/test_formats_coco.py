"""COCO export/import: pycocotools loads it, COCOeval against itself is AP 1.0, holes survive,
round trips keep masks/labels/ids, malformed input is refused whole with a clear message."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from test_formats_common import by_id, listing, make_dataset

from seem_annotator.core import masks
from seem_annotator.errors import FormatError
from seem_annotator.formats.coco import export_coco, parse_coco, read_coco

# pycocotools' decode uses a numpy-1 `__array__` idiom that numpy 2 flags on every call; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


def _quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


def self_eval_ap(path: Path) -> dict[str, float]:
    gt = _quiet(COCO, str(path))
    results = []
    for ann in gt.dataset["annotations"]:
        results.append({"image_id": ann["image_id"], "category_id": ann["category_id"],
                        "segmentation": ann["segmentation"], "bbox": ann["bbox"], "score": 1.0})
    ap = {}
    for kind in ("segm", "bbox"):
        dt = _quiet(gt.loadRes, copy.deepcopy(results))
        ev = COCOeval(gt, dt, kind)
        _quiet(ev.evaluate)
        _quiet(ev.accumulate)
        _quiet(ev.summarize)
        ap[kind] = float(ev.stats[0])
    return ap


def test_export_loads_and_scores_ap_one(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "images")
    out = tmp_path / "export" / "coco.json"
    result = export_coco(ds, out)
    assert result.files == [out] and result.counts == {"images": 3, "annotations": 5, "categories": 3}
    coco = json.loads(out.read_text())
    assert [c["id"] for c in coco["categories"]] == [3, 7, 9]  # label ids, stable
    # relative to the images root (what COCO readers join with their image root), not to the JSON
    assert [im["file_name"] for im in coco["images"]] == ["a.png", "sub dir/b c.png", "rot.jpg"]
    assert (coco["images"][2]["width"], coco["images"][2]["height"]) == (72, 56)  # after EXIF
    anns = {a["id"]: a for a in coco["annotations"]}
    src = by_id(ds)
    for ann_id, ann in anns.items():
        assert ann["iscrowd"] == 0
        assert ann["area"] == masks.area(src[ann_id].rle)
        assert ann["bbox"] == masks.bbox(src[ann_id].rle)
    assert isinstance(anns[10]["segmentation"], list)  # plain blob -> polygon
    assert isinstance(anns[11]["segmentation"], dict)  # donut -> RLE, hole kept
    assert len(anns[12]["segmentation"]) == 2  # two parts -> two polygons
    assert anns[11]["score"] == 0.75
    ap = self_eval_ap(out)
    assert ap["segm"] == pytest.approx(1.0) and ap["bbox"] == pytest.approx(1.0)
    gt = _quiet(COCO, str(out))
    for ann_id, ann in gt.anns.items():  # pycocotools' own rasterisation of what we wrote
        iou = masks.mask_iou(gt.annToMask(ann).astype(bool), masks.decode(src[ann_id].rle))
        assert iou == 1.0 if ann_id == 11 else iou >= 0.98


def test_rle_flag_forces_rle_and_holes_survive(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "images")
    out = tmp_path / "coco.json"
    export_coco(ds, out, rle=True)
    coco = json.loads(out.read_text())
    assert all(isinstance(a["segmentation"], dict) and a["iscrowd"] == 0 for a in coco["annotations"])
    back = read_coco(out, tmp_path / "images")
    for ann in back.annotations:
        assert ann.rle == by_id(ds)[ann.id].rle  # identical, hole included
    donut = masks.decode(by_id(back)[11].rle)
    assert not donut[32, 48]  # the hole's centre is background


def test_file_names_relative_to_the_output_folder_on_request(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "images")
    out = tmp_path / "export" / "coco.json"
    export_coco(ds, out, relative_to_output=True)
    coco = json.loads(out.read_text())
    assert [im["file_name"] for im in coco["images"]] == ["../images/a.png", "../images/sub dir/b c.png",
                                                          "../images/rot.jpg"]
    for image in coco["images"]:
        assert (out.parent / image["file_name"]).is_file()


def test_round_trip_keeps_masks_labels_ids(tmp_path: Path) -> None:
    root = tmp_path / "images"
    ds = make_dataset(root)
    out = root / "coco.json"
    export_coco(ds, out)
    back = read_coco(out, root)
    assert [(im.id, im.file_name, im.width, im.height) for im in back.images] == \
        [(im.id, im.file_name, im.width, im.height) for im in ds.images]
    assert [(lab.id, lab.name) for lab in back.labels] == [(lab.id, lab.name) for lab in ds.labels]
    src = by_id(ds)
    assert sorted(by_id(back)) == sorted(src)
    for ann in back.annotations:
        orig = src[ann.id]
        assert (ann.image_id, ann.label_id, ann.score, ann.order) == (orig.image_id, orig.label_id, orig.score,
                                                                      orig.order)
        assert masks.iou(ann.rle, orig.rle) >= 0.98
    # exporting the imported data again keeps every id (stable across exports)
    again = tmp_path / "again.json"
    export_coco(back, again)
    first, second = json.loads(out.read_text()), json.loads(again.read_text())
    key = [(a["id"], a["image_id"], a["category_id"]) for a in first["annotations"]]
    assert key == [(a["id"], a["image_id"], a["category_id"]) for a in second["annotations"]]
    assert [c["id"] for c in first["categories"]] == [c["id"] for c in second["categories"]]


def test_import_polygons_and_both_rle_forms_keep_iscrowd(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"")  # exists; unreadable images are the project's concern
    m = np.zeros((20, 30), bool)
    m[5:15, 10:20] = True
    rle = masks.encode(m)
    uncompressed = {"size": [20, 30], "counts": [int(v) for v in masks.rle_runs(rle)]}
    data = {"images": [{"id": 4, "file_name": "x.png", "width": 30, "height": 20, "license": 2}],
            "categories": [{"id": 11, "name": "box", "supercategory": "thing"}],
            "annotations": [
                {"id": 1, "image_id": 4, "category_id": 11, "segmentation": [[10, 5, 20, 5, 20, 15, 10, 15]],
                 "iscrowd": 0, "attributes": {"occluded": True}},
                {"id": 2, "image_id": 4, "category_id": 11, "segmentation": rle, "iscrowd": 1},
                {"id": 3, "image_id": 4, "category_id": 11, "segmentation": uncompressed, "iscrowd": 1},
            ], "info": {"year": 2024}}
    ds = parse_coco(data, tmp_path)
    anns = by_id(ds)
    for a in anns.values():
        np.testing.assert_array_equal(masks.decode(a.rle), m)
    assert [anns[i].iscrowd for i in (1, 2, 3)] == [0, 1, 1]
    assert anns[1].extra == {"coco": {"attributes": {"occluded": True}}}
    out = tmp_path / "out.json"
    export_coco(ds, out)
    written = json.loads(out.read_text())
    assert written["info"] == {"year": 2024} and written["images"][0]["license"] == 2
    assert written["categories"][0]["supercategory"] == "thing"
    crowd = [a for a in written["annotations"] if a["iscrowd"]]
    assert len(crowd) == 2 and all(isinstance(a["segmentation"], dict) for a in crowd)
    assert written["annotations"][0]["attributes"] == {"occluded": True}


def _valid(tmp_path: Path) -> dict:
    (tmp_path / "img").mkdir(exist_ok=True)
    (tmp_path / "img" / "a.png").write_bytes(b"")
    return {"images": [{"id": 1, "file_name": "img/a.png", "width": 10, "height": 8}],
            "categories": [{"id": 1, "name": "thing"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                             "segmentation": [[1, 1, 5, 1, 5, 5, 1, 5]], "iscrowd": 0}]}


BAD_CASES = {
    "no annotations key": (lambda d: d.pop("annotations"), "no 'annotations' list"),
    "image without file_name": (lambda d: d["images"][0].pop("file_name"), "has no 'file_name'"),
    "unknown category": (lambda d: d["annotations"][0].update(category_id=5), "category_id 5, which is not"),
    "unknown image": (lambda d: d["annotations"][0].update(image_id=9), "refers to image 9"),
    "outside root": (lambda d: d["images"][0].update(file_name="../secret.png"), "resolves outside"),
    "absolute path": (lambda d: d["images"][0].update(file_name="/etc/hosts"), "absolute path"),
    "missing file": (lambda d: d["images"][0].update(file_name="img/none.png"), "not found"),
    "bad polygon": (lambda d: d["annotations"][0].update(segmentation=[[1, 2, 3]]), "at least 3 x, y"),
    "wrong rle size": (lambda d: d["annotations"][0].update(segmentation={"size": [4, 4], "counts": "04"}),
                       "does not match its image"),
    "bad rle sum": (lambda d: d["annotations"][0].update(segmentation={"size": [8, 10], "counts": [3, 4]}),
                    "summing to 80"),
    "rle too long": (lambda d: d["annotations"][0].update(segmentation={"size": [8, 10], "counts": "0`4"}),
                     "do not describe a 8x10 mask"),
    "rle garbage": (lambda d: d["annotations"][0].update(segmentation={"size": [8, 10], "counts": "ab~ c"}),
                    "not a valid compressed RLE"),
    "duplicate annotation id": (lambda d: d["annotations"].append(dict(d["annotations"][0])), "more than once"),
    "zero width": (lambda d: d["images"][0].update(width=0), "must be positive"),
    "boxes only": (lambda d: d["annotations"][0].update(segmentation=[]), "boxes only"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_malformed_files_are_refused_with_a_message(tmp_path: Path, case: str) -> None:
    data = _valid(tmp_path)
    mutate, message = BAD_CASES[case]
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    before = listing(tmp_path)
    with pytest.raises(FormatError, match=message):
        read_coco(path, tmp_path)
    assert listing(tmp_path) == before


def test_truncated_and_non_object_json(tmp_path: Path) -> None:
    data = json.dumps(_valid(tmp_path))
    path = tmp_path / "t.json"
    path.write_text(data[: len(data) // 2])
    with pytest.raises(FormatError, match="not valid JSON.*truncated"):
        read_coco(path, tmp_path)
    path.write_text("[1, 2]")
    with pytest.raises(FormatError, match="JSON object"):
        read_coco(path, tmp_path)
    path.write_text('{"images": "a\x01b"}')  # json says "Invalid control character at": no doubled "at"
    with pytest.raises(FormatError, match="Invalid control character at line 1") as info:
        read_coco(path, tmp_path)
    assert "at at" not in str(info.value)
    assert parse_coco(_valid(tmp_path), tmp_path).annotations[0].id == 1  # the valid base really is valid


def test_failed_export_leaves_previous_file(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "images")
    out = tmp_path / "coco.json"
    export_coco(ds, out)
    before = out.read_bytes()
    ds.annotations[0].label_id = 999  # not a label: refused before anything is written
    with pytest.raises(FormatError, match="label id 999"):
        export_coco(ds, out)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coco.json", "images"]


def test_real_mval_subset_import_export_compare(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "COCO_MVal_subset"
    src_json = root / "instances_mval_subset.json"
    ds = read_coco(src_json, root)
    assert len(ds.images) == 80 and len(ds.annotations) == 80
    assert any(" " in im.file_name for im in ds.images)
    out = tmp_path / "mval.json"
    export_coco(ds, out)
    original, exported = _quiet(COCO, str(src_json)), _quiet(COCO, str(out))
    assert sorted(original.getCatIds()) == sorted(exported.getCatIds())
    assert sorted(original.getImgIds()) == sorted(exported.getImgIds())
    n_poly = 0
    for ann_id, ann in original.anns.items():
        mine = exported.anns[ann_id]
        assert (mine["image_id"], mine["category_id"], mine["iscrowd"]) == \
            (ann["image_id"], ann["category_id"], ann["iscrowd"])
        assert mine["area"] == ann["area"] and mine["bbox"] == ann["bbox"]
        n_poly += isinstance(mine["segmentation"], list)
        iou = masks.mask_iou(exported.annToMask(mine).astype(bool), original.annToMask(ann).astype(bool))
        assert iou >= 0.98
        if isinstance(mine["segmentation"], dict):
            assert iou == 1.0
    assert n_poly > 60
    for image in exported.dataset["images"]:  # file names resolve from the images root, as in the original
        assert image["file_name"] == original.imgs[image["id"]]["file_name"]
    ap = self_eval_ap(out)
    assert ap["segm"] == pytest.approx(1.0) and ap["bbox"] == pytest.approx(1.0)


def test_bench_export_reports_its_figures(tmp_path: Path) -> None:
    from seem_annotator.bench.export import run

    figures = run(40, seed=1, repeats=1, out_dir=tmp_path)
    assert {"masks", "export_s", "rle_floor_s", "ratio"} <= set(figures)
    assert figures["masks"] == 40
    assert figures["polygon_segmentations"] + figures["rle_segmentations"] == 40
    assert figures["polygon_segmentations"] > 0 and figures["rle_segmentations"] > 0  # holes do occur
    assert figures["export_s"] > 0 and figures["rle_floor_s"] > 0
    assert figures["ratio"] == pytest.approx(figures["export_s"] / figures["rle_floor_s"], rel=0.01)


def test_unreadable_images(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "images")
    ds.images[0].readable = False  # became unreadable after it was annotated: size still known
    ds.images[1].width = ds.images[1].height = 0  # never measured: cannot be described in COCO
    result = export_coco(ds, tmp_path / "coco.json")
    coco = json.loads((tmp_path / "coco.json").read_text())
    assert [im["id"] for im in coco["images"]] == [1, 3]
    assert sorted(a["id"] for a in coco["annotations"]) == [10, 11, 13, 14]
    assert any("currently unreadable" in w for w in result.warnings)
    assert any("annotation 12" in w for w in result.warnings)
