"""Exports of auto-annotated projects: proposals left out unless asked, provenance in COCO
(extra keys `source`, `score`, `proposal`) and LabelMe (`description`, bool `flags`, our meta),
and both read back by our importers with their provenance."""

from __future__ import annotations

import json

import pytest
from pycocotools.coco import COCO

from seem_annotator.cli.main import main
from seem_annotator.core import runs
from seem_annotator.core.project import Project
from seem_annotator.formats.coco import read_coco
from seem_annotator.formats.labelme_read import read_labelme_folder
from tests.conftest import copy_samples
from tests.test_core_runs import P, box_rle

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


@pytest.fixture
def folder(tmp_path):
    folder = copy_samples(tmp_path / "photos")
    with Project.create(folder) as project:
        image = project.images()[0]
        h, w = image.height, image.width
        project.add_label("dog")
        run, _ = runs.open_run(project.store, "k", {}, "focalt_v1", "abc", "local")
        runs.merge_image(project.store, run.id, image.id, [
            P("dog", 0.9, "everything", box_rle(h, w, 0, 50, 0, 50), [0, 0, 50, 50]),
            P("zebra", 0.4, "text", box_rle(h, w, 100, 150, 100, 150), [100, 100, 50, 50])], None, 0.1, 0.7)
        dog = project.proposals(image.id)[0]
        project.accept_proposal(dog.id, reviewed_by="ana")
    return folder


def test_coco_export_with_and_without_proposals(folder, tmp_path, capsys):
    plain, full = tmp_path / "plain.json", tmp_path / "full.json"
    assert main(["export", "coco", "--project", str(folder), "--out", str(plain)]) == 0
    assert main(["export", "coco", "--project", str(folder), "--out", str(full), "--include-proposals"]) == 0
    anns = json.loads(plain.read_text())["annotations"]
    assert len(anns) == 1
    assert anns[0]["source"] == "run:1/everything" and anns[0]["score"] == 0.9 and "proposal" not in anns[0]
    doc = json.loads(full.read_text())
    assert len(doc["annotations"]) == 2
    zebra = doc["annotations"][1]
    assert (zebra["source"], zebra["score"], zebra["proposal"]) == ("run:1/text", 0.4, True)
    assert "zebra" in [c["name"] for c in doc["categories"]]
    assert len({a["id"] for a in doc["annotations"]}) == 2
    coco = COCO(str(full))  # pycocotools ignores the extra keys
    assert len(coco.getAnnIds()) == 2 and coco.annToMask(coco.loadAnns(zebra["id"])[0]).sum() == 2500
    dataset = read_coco(full, folder)
    assert [a.provenance for a in dataset.annotations] == ["run:1/everything", "run:1/text"]
    assert dataset.annotations[1].extra == {"coco": {"proposal": True}}
    with Project.open(folder, read_only=True) as project:  # exporting reviewed nothing
        assert project.info()["proposals"] == 1 and len(project.annotations()) == 1


def test_labelme_export_with_and_without_proposals(folder, tmp_path):
    plain, full = tmp_path / "plain", tmp_path / "full"
    assert main(["export", "labelme", "--project", str(folder), "--out", str(plain)]) == 0
    assert main(["export", "labelme", "--project", str(folder), "--out", str(full), "--include-proposals"]) == 0
    with Project.open(folder, read_only=True) as project:
        stem = project.images()[0].file_name.rsplit(".", 1)[0]
    shapes = json.loads((plain / f"{stem}.json").read_text())["shapes"]
    assert [s["label"] for s in shapes] == ["dog"]
    assert shapes[0]["description"] == "source=run:1/everything score=0.9000" and shapes[0]["flags"] == {}
    shapes = json.loads((full / f"{stem}.json").read_text())["shapes"]
    assert [s["label"] for s in shapes] == ["dog", "zebra"]
    zebra = shapes[1]
    # What labelme 5-7 requires of a shape: a str description and flags mapping names to bools.
    assert zebra["description"] == "source=run:1/text score=0.4000" and zebra["flags"] == {"proposal": True}
    for shape in shapes:
        assert isinstance(shape["description"], str)
        assert all(isinstance(k, str) and isinstance(v, bool) for k, v in shape["flags"].items())
    assert zebra["seem_annotator"]["source"] == "run:1/text"
    dataset = read_labelme_folder(full, images_root=folder)
    assert sorted((a.provenance, a.score) for a in dataset.annotations) == [("run:1/everything", 0.9),
                                                                          ("run:1/text", 0.4)]
