"""Small parts of the video package: DAVIS measures, prompts from a mask, the keyframe colour
model, the flow carry, zoomed crops."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from seem_annotator.core import masks
from seem_annotator.core.prompts import BoxPrompt, PointPrompt
from seem_annotator.engine.classical_backend import ClassicalBackend
from seem_annotator.video.colour import ColourModel
from seem_annotator.video.flow import FlowWarper
from seem_annotator.video.frames import make_frame
from seem_annotator.video.metrics import boundary_f, region_j
from seem_annotator.video.prompts import farthest_points, prompts_from_mask
from seem_annotator.video.tracker import Anchor, MaskTracker

DAVIS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "video"


def _square(h: int, w: int, y: int, x: int, s: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[y:y + s, x:x + s] = True
    return m


def test_j_and_f():
    a = _square(100, 100, 20, 20, 40)
    assert region_j(a, a) == 1.0 and boundary_f(a, a) == 1.0
    assert region_j(np.zeros_like(a), np.zeros_like(a)) == 1.0
    assert boundary_f(np.zeros_like(a), a) == 0.0
    # One pixel off is within the tolerance (0.008 x diagonal = 2 px here); ten pixels is not.
    assert boundary_f(_square(100, 100, 21, 21, 40), a) == 1.0
    assert boundary_f(_square(100, 100, 30, 30, 40), a) < 0.5
    assert abs(region_j(_square(100, 100, 20, 40, 40), a) - 1 / 3) < 1e-6


def test_prompts_from_mask():
    mask = _square(120, 160, 30, 40, 50)
    prompts = prompts_from_mask(mask, ClassicalBackend())
    pos = [p for p in prompts if isinstance(p, PointPrompt) and p.positive]
    neg = [p for p in prompts if isinstance(p, PointPrompt) and not p.positive]
    assert len(pos) == 5 and all(mask[int(p.y), int(p.x)] for p in pos)
    assert neg and not any(mask[int(p.y), int(p.x)] for p in neg)
    assert isinstance(prompts[-1], BoxPrompt)  # the box last
    box = prompts[-1]
    assert box.x0 < 40 and box.y0 < 30 and box.x1 > 90 and box.y1 > 80
    assert prompts_from_mask(np.zeros_like(mask), ClassicalBackend()) == ()


@pytest.mark.parametrize("where", ["small in a large frame", "against the corner"])
def test_prompts_ring_negatives_are_those_of_a_whole_frame_dilation(where):
    """The ring the negative clicks come from is dilated in a window around the object only: the
    same clicks as from dilating the whole frame."""
    mask = np.zeros((480, 854), bool)
    if where == "against the corner":
        mask[:90, :140] = True
    else:
        cv2.ellipse(mask.view(np.uint8), (600, 300), (25, 15), 30, 0, 360, 1, -1)
    y0, y1, x0, x1 = masks.bounds(mask)
    gap = max(3, int(round(max(y1 - y0, x1 - x0) * 0.12)))
    disc = lambda r: cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))  # noqa: E731
    near = cv2.dilate(mask.astype(np.uint8), disc(gap)).astype(bool)
    ring = cv2.dilate(mask.astype(np.uint8), disc(2 * gap)).astype(bool) & ~near
    expected = [(x + 0.5, y + 0.5) for x, y in farthest_points(ring, 8)]
    prompts = prompts_from_mask(mask, ClassicalBackend(), box_negatives=0)
    got = [(p.x, p.y) for p in prompts if isinstance(p, PointPrompt) and not p.positive]
    assert got == expected


def test_prompts_click_the_background_inside_the_box():
    # A plus: most of its box is background, which a backend fitting colour models to the box
    # would learn as object unless negatives say otherwise.
    mask = np.zeros((200, 200), bool)
    mask[40:160, 85:115] = True
    mask[85:115, 40:160] = True
    prompts = prompts_from_mask(mask, ClassicalBackend())
    box = prompts[-1]
    assert isinstance(box, BoxPrompt)
    gap = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)
    inside = [p for p in prompts if isinstance(p, PointPrompt) and not p.positive
              and box.x0 <= p.x <= box.x1 and box.y0 <= p.y <= box.y1]
    assert len(inside) >= 16
    assert min(gap[int(p.y), int(p.x)] for p in inside) >= 10  # clear of a lagging mask's edge
    corners = {(p.x < 100, p.y < 100) for p in inside}
    assert len(corners) == 4  # every background corner of the box gets some
    assert not any(isinstance(p, PointPrompt) and not p.positive and mask[int(p.y), int(p.x)] for p in prompts)


def test_colour_model_separates_keyframe_colours():
    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[...] = (30, 60, 200)  # blue background
    obj = _square(60, 80, 20, 30, 20)
    rgb[obj] = (220, 40, 30)  # red object
    prob = ColourModel(rgb, obj).probability(rgb)
    assert prob[obj].min() > 0.9 and prob[~obj].max() < 0.1


def test_flow_carries_a_moving_square_and_tracker_follows_it():
    h, w = 96, 128
    rng = np.random.default_rng(0)
    texture = (rng.random((h, w, 3)) * 60 + 60).astype(np.uint8)

    def frame(x: int) -> np.ndarray:
        img = texture.copy()
        img[30:60, x:x + 30] = (230, 40, 40)
        return img

    frames = [make_frame(f"f{i}", frame(20 + 4 * i), (h, w), 480) for i in range(3)]
    start = _square(h, w, 30, 20, 30)
    carried = FlowWarper().warp(frames[0].gray, frames[1].gray, start, (h, w)) >= 0.5
    assert region_j(carried, _square(h, w, 30, 24, 30)) > 0.7
    # No keyframe given: the previous frame's colours clean the answer up (a backend fitting its
    # box alone fills the box, which reaches back over the square's old position).
    tracker = MaskTracker(ClassicalBackend())
    result = tracker.step(frames[0], frames[1], start)
    assert region_j(result.mask, _square(h, w, 30, 24, 30)) > 0.8 and 0 < result.confidence <= 1


def test_classical_backend_tracks_a_davis_object_through_its_box():
    """The camel fills little of its box: GrabCut fitted to the box alone (the classical backend
    with the carried mask only as a persisted answer) keeps the sand around it unless the prompts
    click that background."""
    src = DAVIS / "davis2016_camel"
    if not src.is_dir():
        pytest.skip("DAVIS data not found")
    size = (214, 120)
    frames, gts = [], []
    for i in range(10):
        rgb = cv2.cvtColor(cv2.imread(str(src / "frames" / f"{i:05d}.jpg")), cv2.COLOR_BGR2RGB)
        gt = cv2.imread(str(src / "masks" / f"{i:05d}.png"), cv2.IMREAD_GRAYSCALE)
        frames.append(make_frame(f"camel{i}", cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), size[::-1], 480))
        gts.append(cv2.resize(gt, size, interpolation=cv2.INTER_NEAREST) > 0)
    tracker = MaskTracker(ClassicalBackend())
    anchor = Anchor(0, masks.encode(gts[0]), frames[0].image)
    mask, js = gts[0], []
    for i in range(1, len(frames)):
        mask = tracker.step(frames[i - 1], frames[i], mask, anchor).mask
        js.append(region_j(mask, gts[i]))
    assert np.mean(js) > 0.68  # 0.65 with only the ring's negatives (outside the box), 0.71 now


def test_bench_video_json_layout(tmp_path, capsys):
    import json
    from pathlib import Path

    import cv2
    import pytest

    from seem_annotator.cli.main import main

    src = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "video" / "davis2016_parkour"
    if not src.is_dir():
        pytest.skip("DAVIS data not found")
    seq = tmp_path / "data" / "parkour"
    (seq / "frames").mkdir(parents=True)
    (seq / "masks").mkdir()
    for i in range(4):
        frame = cv2.imread(str(src / "frames" / f"{i:05d}.jpg"))
        mask = cv2.imread(str(src / "masks" / f"{i:05d}.png"), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(seq / "frames" / f"{i:05d}.jpg"), cv2.resize(frame, (214, 120)))
        cv2.imwrite(str(seq / "masks" / f"{i:05d}.png"), cv2.resize(mask, (214, 120), interpolation=cv2.INTER_NEAREST))
    out = tmp_path / "bench.json"
    assert main(["bench", "video", "--dataset", str(tmp_path / "data"), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    row = data["sequences"]["parkour"]
    assert set(row) == {"J", "F", "JF", "frames", "fps"} and row["frames"] == 3 and row["fps"] > 0
    assert set(data["mean"]) == {"J", "F", "JF"} and set(data["baseline"]["mean"]) == {"J", "F", "JF"}
    assert 0.0 <= data["baseline"]["sequences"]["parkour"]["J"] <= 1.0 and row["JF"] == pytest.approx(
        (row["J"] + row["F"]) / 2, abs=1e-3)
    assert "parkour" in capsys.readouterr().out
