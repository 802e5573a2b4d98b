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


def test_steady_state_counts_whole_batches_while_every_worker_is_busy():
    from seem_annotator.bench.annotate import steady_state

    # Worker a hands over 4 images every 2 s from t=10, worker b from t=11 (ready: 11); a has
    # handed over its last at 16, b at 15 (the window ends at 15): 2 images/s each.
    arrivals = [(t, "a") for t in (10, 12, 14, 16) for _ in range(4)]
    arrivals += [(t, "b") for t in (11, 13, 15) for _ in range(4)]
    figures = steady_state(sorted(arrivals), start=1.0)
    assert figures == {"ready_s": 10.0, "steady_images_per_s": 4.0}
    # Too short to say: one handover of b inside the window.
    assert steady_state([(1, "a"), (2, "a"), (3, "b")], 0.0)["steady_images_per_s"] is None


def test_stopwatch_gives_a_batch_the_time_its_first_result_came():
    from seem_annotator.annotate.work import ImageResult
    from seem_annotator.bench.annotate import Stopwatch

    now = [0.0]

    class Batches:
        name = "fake"

        def map(self, spec, tasks):
            for batch in range(2):
                now[0] += 1.5  # the driver waits for a batch, then gets its results at once
                for i in range(3):
                    now[0] += 0.001
                    yield ImageResult(3 * batch + i, worker="w")

        def close(self):
            pass

    watch = Stopwatch(Batches(), clock=lambda: now[0])
    assert [r.image_id for r in watch.map(None, [])] == list(range(6))
    assert [t for t, _ in watch.arrivals] == pytest.approx([1.501] * 3 + [3.004] * 3)


def test_several_image_folders_are_linked_into_one_in_the_order_given(tmp_path):
    from seem_annotator.bench.annotate import _images, _one_folder

    first, second = tmp_path / "b", tmp_path / "a"
    for folder, names in ((first, ("x 1.jpg", "y.png")), (second, ("a.jpg", "b.jpg", "notes.txt"))):
        folder.mkdir()
        for name in names:
            (folder / name).write_bytes(b"not read here")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    linked = _images(_one_folder([first, second], 3, scratch), 10)
    assert [p.name for p in linked] == ["000000_x_1.jpg", "000001_y.png", "000002_a.jpg"]
    assert [p.resolve() for p in linked] == [first / "x 1.jpg", first / "y.png", second / "a.jpg"]
    assert _one_folder([first], 3, scratch) == first  # one folder is used as it is


def test_engines_alternate_their_order_between_rounds():
    from seem_annotator.bench.annotate import engine_order

    assert engine_order(0, [1, 2]) == ["local", 1, 2]
    assert engine_order(1, [1, 2]) == [2, 1, "local"]
    assert engine_order(2, [1, 2]) == ["local", 1, 2]
    assert engine_order(3, [4]) == [4, "local"]
