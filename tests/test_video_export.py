"""Export of sequences and tracks: COCO with videos/video_id/frame_index/track_id (loads in
pycocotools), the DAVIS plugin's indexed PNGs read back to the same masks, LabelMe group_id."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from pycocotools.coco import COCO
from video_support import frame_ids, small_sequence, start_track

from seem_annotator.cli.main import main
from seem_annotator.core import masks


def _project(tmp_path: Path):
    project, seq_id, gts = small_sequence(tmp_path, n=3)
    with project:
        ids = frame_ids(project, seq_id)
        track = start_track(project, seq_id, 0, gts[0])
        project.tracks.write_propagated(track, ids[1], masks.encode(gts[1]), {"from_frame": 0}, 0.9, False)
        other = np.zeros_like(gts[0])
        other[2:20, 2:40] = True
        second = start_track(project, seq_id, 1, other & ~gts[1], label="sky")
        cv2.imwrite(str(tmp_path / "proj" / "photo.png"), np.full((30, 40, 3), 60, np.uint8))
        project.rescan()
        name = project.sequences.get(seq_id).name
    return tmp_path / "proj", seq_id, name, ids, track, second, gts, other & ~gts[1]


def test_coco_export_has_video_fields_and_loads(tmp_path: Path):
    root, seq_id, name, ids, track, second, gts, other = _project(tmp_path)
    out = tmp_path / "coco.json"
    assert main(["export", "coco", "--project", str(root), "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["videos"] == [{"id": seq_id, "name": name, "frame_count": 3}]
    frames = {i["id"]: i for i in data["images"]}
    assert [(frames[i]["video_id"], frames[i]["frame_index"]) for i in ids] == [(seq_id, 0), (seq_id, 1), (seq_id, 2)]
    photo = next(i for i in data["images"] if i["file_name"] == "photo.png")
    assert "video_id" not in photo
    tracks = sorted((a["image_id"], a["track_id"]) for a in data["annotations"])
    assert tracks == sorted([(ids[0], track), (ids[1], track), (ids[1], second)])
    coco = COCO(str(out))
    assert len(coco.getAnnIds(imgIds=[ids[1]])) == 2


def test_davis_png_reads_back_to_the_same_masks(tmp_path: Path):
    root, seq_id, name, ids, track, second, gts, other = _project(tmp_path)
    out = tmp_path / "davis"
    assert main(["export", "davis", "--project", str(root), "--out", str(out)]) == 0
    files = sorted(p.name for p in (out / name).glob("*.png"))
    assert files == ["00000.png", "00001.png", "00002.png"]
    img = Image.open(out / name / "00001.png")
    assert img.mode == "P"
    index = np.asarray(img)
    assert np.array_equal(index == track, gts[1] & ~other) and np.array_equal(index == second, other)
    assert not np.asarray(Image.open(out / name / "00002.png")).any()  # frame with no mask: empty
    assert json.loads((out / name / "objects.json").read_text()) == {str(track): "horse", str(second): "sky"}


def test_labelme_group_id_is_the_track(tmp_path: Path):
    root, seq_id, name, ids, track, second, gts, other = _project(tmp_path)
    out = tmp_path / "labelme"
    assert main(["export", "labelme", "--project", str(root), "--out", str(out)]) == 0
    doc = json.loads(next(out.rglob("f1.json")).read_text())
    groups = {s["label"]: s["group_id"] for s in doc["shapes"]}
    assert groups == {"horse": track, "sky": second}
