"""`seem-annotator bench annotate` on the tiny fixture: the figures it promises, from real runs."""

from __future__ import annotations

import json

import pytest

from seem_annotator.cli.main import main
from tests.conftest import DATA, SHARED

FIXTURE = SHARED / "seem" / "fixtures" / "tiny_focalt_v1"
IMAGES = DATA / "COCO_MVal_subset" / "img"


@pytest.mark.slow
@pytest.mark.skipif(not (FIXTURE / "state_dict.pt").is_file() or not IMAGES.is_dir(),
                    reason="shared fixture model or COCO subset missing")
def test_bench_annotate_writes_run_and_bare_figures(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "annotate", "--model", str(FIXTURE / "config.yaml"), "--checkpoint",
                 str(FIXTURE / "state_dict.pt"), "--images", str(IMAGES), "--limit", "2", "--rounds", "1",
                 "--json", str(out)]) == 0
    figures = json.loads(out.read_text())
    assert figures["images"] == 2 and figures["proposals_per_run"] > 0
    assert figures["bare_images_per_s"] > 0 and figures["run_images_per_s"] > 0
    assert figures["ratio"] == pytest.approx(figures["run_images_per_s"] / figures["bare_images_per_s"], rel=1e-2)
    assert not list(IMAGES.glob(".seem-annotator"))  # the run's project lived in a temp folder


def test_bench_annotate_refuses_a_folder_without_images(tmp_path, capsys):
    assert main(["bench", "annotate", "--model", "focalt_v1", "--images", str(tmp_path)]) == 2
    assert "holds no images" in capsys.readouterr().err
