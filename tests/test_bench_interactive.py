"""The click-simulation benchmark: protocol, dataset readers, metrics, command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seem_annotator.bench import interactive as bench
from seem_annotator.core import masks as rle_masks
from seem_annotator.core.prompts import BoxPrompt, PointPrompt
from seem_annotator.engine.types import Candidate, DecodeRequest, ImageInput
from seem_annotator.errors import FormatError, UserError


def test_interior_point_is_the_farthest_from_the_boundary():
    region = np.zeros((40, 60), bool)
    region[10:30, 5:55] = True  # centre row 19/20, any column far from the ends
    x, y = bench.interior_point(region)
    assert y in (19, 20) and 14 <= x <= 45
    # the image border counts as boundary
    edge = np.zeros((20, 20), bool)
    edge[:, :10] = True
    x, _y = bench.interior_point(edge)
    assert x in (4, 5)
    assert bench.interior_point(np.zeros((5, 5), bool)) is None


def test_next_click_sign_ignore_band_and_no_repeats():
    gt = np.zeros((50, 50), bool)
    gt[10:40, 10:40] = True
    pred = np.zeros_like(gt)
    ignore = np.zeros_like(gt)
    clicked = np.zeros_like(gt)
    x, y, positive = bench.next_click(gt, pred, ignore, clicked)
    assert positive and gt[y, x]
    # false background larger than the miss -> negative click in it
    pred2 = gt.copy()
    pred2[0:10, :] = True
    pred2[20, 20] = False
    x, y, positive = bench.next_click(gt, pred2, ignore, clicked)
    assert not positive and y < 10
    # the ignore band is never clicked and an already clicked pixel is never clicked again
    ignore2 = np.zeros_like(gt)
    ignore2[10:40, 10:40] = True
    ignore2[12, 12] = False
    x, y, positive = bench.next_click(gt, pred, ignore2, clicked)
    assert (x, y, positive) == (12, 12, True)
    clicked[12, 12] = True
    assert bench.next_click(gt, pred, ignore2, clicked) is None


def test_masked_iou_and_noc():
    gt = np.zeros((10, 10), bool)
    gt[:5] = True
    pred = np.zeros_like(gt)
    pred[:6] = True
    ignore = np.zeros_like(gt)
    assert bench.masked_iou(pred, gt, ignore) == pytest.approx(50 / 60)
    ignore[5] = True
    assert bench.masked_iou(pred, gt, ignore) == 1.0
    assert bench.noc([0.5, 0.86, 0.91], 0.85, 20) == 2
    assert bench.noc([0.5, 0.86, 0.89], 0.90, 20) == 20


class OracleBackend:
    """Answers the ground truth after `needed` clicks (and records what it was given)."""

    name = "oracle"
    device = "cpu"

    def __init__(self, gt_by_key: dict[str, np.ndarray], needed: int) -> None:
        self.gt, self.needed, self.requests = gt_by_key, needed, []

    def supports(self, kind: str) -> bool:
        return True

    def encode(self, image: ImageInput) -> None:
        pass

    def predict(self, request: DecodeRequest) -> Candidate:
        self.requests.append(request)
        gt = self.gt[request.image.key]
        if len(request.prompts) >= self.needed:
            return Candidate(mask=gt.copy())
        part = np.zeros_like(gt)
        ys, xs = np.nonzero(gt)
        part[ys[: len(ys) // 2], xs[: len(xs) // 2]] = True
        return Candidate(mask=part)

    def segment_everything(self, image, labels):
        return []


def _write_folder(root: Path, names=("a", "b"), image_dir="images", mask_dir="masks") -> dict[str, np.ndarray]:
    (root / image_dir).mkdir(parents=True)
    (root / mask_dir).mkdir()
    gts = {}
    for i, name in enumerate(names):
        img = np.full((30, 40, 3), 60 + 40 * i, np.uint8)
        Image.fromarray(img).save(root / image_dir / f"{name}.jpg")
        mask = np.zeros((30, 40, 3), np.uint8)
        mask[5:20, 8:30] = 255
        mask[20, 8:30] = 128  # ignore band
        Image.fromarray(mask).save(root / mask_dir / f"{name}.png")
        gts[name] = mask[..., 0] > 128
    return gts


@pytest.mark.parametrize("dirs", [("images", "masks"), ("img", "gt")])
def test_folder_dataset_with_ignore_band(tmp_path, dirs):
    _write_folder(tmp_path, image_dir=dirs[0], mask_dir=dirs[1])
    samples = list(bench.load_samples(tmp_path))
    assert [s.name for s in samples] == ["a", "b"]
    s = samples[0]
    assert s.gt.shape == (30, 40) and s.gt.sum() == 15 * 22 and s.ignore.sum() == 22
    assert s.image.full_size == (30, 40) and len(s.image.key) == 64


def test_coco_dataset(tmp_path):
    (tmp_path / "img").mkdir()
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "img" / "x.jpg")
    m = np.zeros((30, 40), bool)
    m[3:9, 4:12] = True
    data = {"images": [{"id": 1, "file_name": "img/x.jpg", "height": 30, "width": 40}],
            "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "iscrowd": 0,
                             "segmentation": rle_masks.encode(m)},
                            {"id": 6, "image_id": 1, "category_id": 1, "iscrowd": 0,
                             "segmentation": [[20, 20, 30, 20, 30, 28, 20, 28]]},
                            {"id": 7, "image_id": 1, "category_id": 1, "iscrowd": 1,
                             "segmentation": rle_masks.encode(m)}],
            "categories": [{"id": 1, "name": "thing"}]}
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(data))
    samples = list(bench.load_samples(ann))
    assert [s.name for s in samples] == ["x#5", "x#6"]  # crowd skipped
    assert np.array_equal(samples[0].gt, m) and samples[1].gt.sum() > 50
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(FormatError):
        list(bench.load_samples(bad))
    with pytest.raises(UserError):
        bench.load_samples(tmp_path / "img")


def test_evaluate_metrics_with_an_oracle(tmp_path):
    gts = _write_folder(tmp_path)
    samples = list(bench.load_samples(tmp_path))
    backend = OracleBackend({s.image.key: s.gt for s in samples}, needed=3)
    res = bench.evaluate(backend, samples, max_clicks=5)
    assert res["samples"] == 2
    assert res["noc85"] == 3 and res["noc90"] == 3 and res["fail90"] == 0
    assert list(res["miou_at"]) == ["1", "2", "3", "4", "5"]
    assert res["miou_at"]["3"] == 1.0 and res["miou_at"]["1"] < 0.85
    assert set(res["click_ms"]) == {"p50", "p95"} and "p50" in res["encode_ms"]
    first = backend.requests[0]
    assert isinstance(first.prompts[0], PointPrompt) and first.prompts[0].positive
    assert gts["a"][int(first.prompts[0].y), int(first.prompts[0].x)]
    # every later click is at a new pixel, and each request carries the previous memory/mask
    pts = [(p.x, p.y) for p in backend.requests[4].prompts]
    assert len(set(pts)) == len(pts)


def test_box_first_prompt_modes(tmp_path):
    _write_folder(tmp_path, names=("a",))
    samples = list(bench.load_samples(tmp_path))
    backend = OracleBackend({s.image.key: s.gt for s in samples}, needed=1)
    bench.evaluate(backend, samples, max_clicks=2, first_prompt="box")
    box = backend.requests[0].prompts[0]
    assert isinstance(box, BoxPrompt) and (box.x0, box.y0, box.x1, box.y1) == (8, 5, 30, 20)
    backend.requests.clear()
    bench.evaluate(backend, samples, max_clicks=2, first_prompt="box-centre")
    centre = backend.requests[0].prompts[0]
    assert isinstance(centre, PointPrompt) and (centre.x, centre.y) == (19.5, 12.5)


@pytest.mark.slow
def test_command_line_classical_json_and_plot(tmp_path):
    from seem_annotator.cli.main import main

    _write_folder(tmp_path / "ds")
    out, plot = tmp_path / "r.json", tmp_path / "r.png"
    code = main(["bench", "interactive", "--dataset", str(tmp_path / "ds"), "--backend", "classical",
                 "--max-clicks", "3", "--json", str(out), "--plot", str(plot)])
    assert code == 0
    res = json.loads(out.read_text())
    for key in ("samples", "noc85", "noc90", "fail90", "miou_at", "click_ms", "encode_ms"):
        assert key in res
    assert res["samples"] == 2 and len(res["miou_at"]) == 3 and res["backend"] == "classical"
    assert isinstance(res["second_core"], bool)
    assert plot.stat().st_size > 1000
    assert main(["bench", "interactive", "--dataset", str(tmp_path / "missing"), "--json", str(out)]) == 2


def test_several_backends_run_interleaved_and_the_json_maps_each_name(tmp_path, monkeypatch, capsys):
    import argparse

    _write_folder(tmp_path / "ds")
    samples = list(bench.load_samples(tmp_path / "ds"))
    order: list[str] = []

    class Named(OracleBackend):
        def predict(self, request):
            order.append((self.name, request.image.key))
            return super().predict(request)

    made = {}

    def make(name, device):
        b = Named({s.image.key: s.gt for s in samples}, needed=2 if name == "fast" else 4)
        b.name = name
        made[name] = b
        return b

    monkeypatch.setattr(bench, "make_backend", make)
    out = tmp_path / "r.json"
    args = argparse.Namespace(max_clicks=4, backend="fast,slow", dataset=str(tmp_path / "ds"), images=None, skip=0,
                              limit=0, half="all", first_prompt="click", verbose=False, json=str(out), plot=None,
                              device="cpu")
    assert bench.run(args) == 0
    res = json.loads(out.read_text())
    assert set(res) == {"backends"} and set(res["backends"]) == {"fast", "slow"}
    assert res["backends"]["fast"]["noc90"] == 2 and res["backends"]["slow"]["noc90"] == 4
    for r in res["backends"].values():
        assert {"samples", "noc85", "noc90", "fail90", "miou_at", "click_ms", "backend"} <= set(r)
    # interleaved: sample a by both backends, then sample b by both
    runs = [pair for i, pair in enumerate(order) if i == 0 or order[i - 1] != pair]
    a, b = samples[0].image.key, samples[1].image.key
    assert runs == [("fast", a), ("slow", a), ("fast", b), ("slow", b)]
    assert "fast" in capsys.readouterr().out


def test_classical_variants_switch_off_one_addition_each():
    one = bench.make_backend("classical-one-core", "cpu")
    assert one.name == "classical-one-core" and one.second_core is False and one.local_refine
    whole = bench.make_backend("classical-whole-outline", "cpu")
    assert whole.name == "classical-whole-outline" and whole.local_refine is False
    assert bench.make_backend("classical", "cpu").local_refine


def _berkeley_sample(stem: str = "42049"):
    from conftest import DATA

    root = DATA / "Berkeley"
    gt = np.asarray(Image.open(root / "masks" / f"{stem}.png").convert("RGB"))[..., 0] > 128
    pixels = np.asarray(Image.open(root / "images" / f"{stem}.jpg").convert("RGB"))
    return ImageInput(key=stem, pixels=pixels, full_size=pixels.shape[:2]), gt


def test_grabcut_plain_is_the_textbook_clicker_on_a_real_photo():
    import cv2

    from seem_annotator.bench.grabcut_plain import GrabCutPlainBackend, plain_grabcut

    image, gt = _berkeley_sample()
    x, y = bench.interior_point(gt)
    backend = bench.make_backend("grabcut-plain", "cpu")
    assert isinstance(backend, GrabCutPlainBackend) and backend.supports("point")
    cand = backend.predict(DecodeRequest(image=image, object_id="o", round_index=0,
                                         prompts=(PointPrompt(x + 0.5, y + 0.5),)))
    assert cand.mask.shape == gt.shape and cand.mask[y, x]
    assert bench.masked_iou(cand.mask, gt, np.zeros_like(gt)) > 0.3
    # the same as the function on its own (no memory between rounds), and the hard discs hold
    bgr = cv2.cvtColor(image.pixels, cv2.COLOR_RGB2BGR)
    assert np.array_equal(cand.mask, plain_grabcut(bgr, [(x, y, True)]))
    both = plain_grabcut(bgr, [(x, y, True), (x + 30, y, False)])
    assert both[y, x] and not both[y, x + 30] and not both[0].any()


def test_select_samples_splits_into_even_and_odd_halves_before_the_limit():
    samples = list(range(7))
    assert list(bench.select_samples(iter(samples), "all", 0)) == samples
    assert list(bench.select_samples(iter(samples), "even", 0)) == [0, 2, 4, 6]
    assert list(bench.select_samples(iter(samples), "odd", 2)) == [1, 3]
    # --skip leaves out a development part: the held-out rest, then the limit
    assert list(bench.select_samples(iter(samples), "all", 3, skip=5)) == [5, 6]
    assert list(bench.select_samples(iter(samples), "odd", 0, skip=1)) == [3, 5]
