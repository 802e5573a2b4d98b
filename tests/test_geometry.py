"""core.geometry: exact pixel-corner outlines, holes, parts, detail setting, crop decoding."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from shapely.geometry import Polygon
from test_formats_common import blob, ring, two_parts

from seem_annotator.core import geometry as geo
from seem_annotator.core import masks
from seem_annotator.formats import rle_crop

# pycocotools' decode uses a numpy-1 `__array__` idiom that numpy 2 flags on every call; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


def random_masks(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        h, w = (int(v) for v in rng.integers(1, 28, 2))
        m = rng.random((h, w)) < rng.uniform(0.1, 0.9)
        if rng.random() < 0.5:
            m = cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)).astype(bool)
        if m.any():
            out.append(m)
    return out


def test_exact_outline_reproduces_any_mask_exactly() -> None:
    # Noise masks have every awkward case: single pixels, one-pixel lines, diagonal pinches, holes,
    # islands inside holes. The exact outline (tolerance 0) must rasterise back pixel for pixel.
    exact = geo.PolygonDetail(tolerance=0)
    for m in random_masks(300):
        geom = geo.mask_to_geometry(m, exact)
        assert geom.is_valid
        np.testing.assert_array_equal(geo.geometry_to_mask(geom, *m.shape), m)
        polys = geo.coco_polygons(m, exact)
        assert (polys is None) == geo.has_holes(m)
        if polys is not None:
            np.testing.assert_array_equal(geo.rings_to_mask(polys, *m.shape), m)


def _shared_masks(data: Path) -> list[np.ndarray]:
    files = sorted((data / "Berkeley" / "masks").glob("*.png"))[:30] + sorted(
        (data / "COCO_MVal_subset" / "gt").glob("*.png"))[:30]
    out = []
    for f in files:
        a = np.asarray(Image.open(f))
        out.append((a[..., 0] if a.ndim == 3 else a) > 128)
    return out


def test_default_detail_keeps_iou_on_real_masks(shared_data: Path) -> None:
    real = _shared_masks(shared_data)
    assert len(real) >= 40
    n_simplified = 0
    for m in real:
        geom = geo.mask_to_geometry(m)
        assert geom.is_valid and not geom.is_empty
        assert masks.mask_iou(geo.geometry_to_mask(geom, *m.shape), m) >= 0.98
        exact_vertices = sum(len(r) for r in geo.mask_to_rings(m, geo.PolygonDetail(0)).outer)
        n_simplified += sum(len(r) for r in geo.mask_to_rings(m).outer) < exact_vertices
        polys = geo.coco_polygons(m)
        if polys is not None:
            assert masks.mask_iou(geo.rings_to_mask(polys, *m.shape), m) >= 0.98
        else:
            assert geo.has_holes(m)
    assert n_simplified > len(real) // 2  # the default really simplifies, it is not the exact outline


def test_coarse_detail_still_meets_min_iou() -> None:
    coarse = geo.PolygonDetail(tolerance=4.0, min_iou=0.98)
    for m in [blob(40, 50, (20, 20), (6, 3), 30), blob(300, 400, (200, 150), (150, 90), 10)]:
        assert masks.mask_iou(geo.geometry_to_mask(geo.mask_to_geometry(m, coarse), *m.shape), m) >= 0.98
        polys = geo.coco_polygons(m, coarse)
        assert masks.mask_iou(geo.rings_to_mask(polys, *m.shape), m) >= 0.98


def test_holes_and_parts() -> None:
    donut = ring(80, 100)
    geom = geo.mask_to_geometry(donut)
    assert len(geom.geoms) == 1 and len(geom.geoms[0].interiors) == 1
    assert geo.has_holes(donut)
    assert geo.coco_polygons(donut) is None  # COCO polygons cannot express a hole
    pair = two_parts(80, 100)
    geom = geo.mask_to_geometry(pair)
    assert len(geom.geoms) == 2 and not geo.has_holes(pair)
    assert len(geo.coco_polygons(pair)) == 2
    assert geo.mask_to_geometry(np.zeros((5, 5), bool)).is_empty
    assert geo.coco_polygons(np.zeros((5, 5), bool)) is None


def test_small_hole_survives_simplification() -> None:
    m = blob(60, 60, (30, 30), (20, 20))
    m[30, 30] = False  # a one-pixel hole: simplification must not drop it
    geom = geo.mask_to_geometry(m)
    assert sum(len(p.interiors) for p in geom.geoms) == 1
    assert not geo.geometry_to_mask(geom, 60, 60)[30, 30]


def test_invalid_polygon_is_repaired() -> None:
    bow_tie = Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])
    assert not bow_tie.is_valid
    m = geo.geometry_to_mask(bow_tie, 12, 12)
    # make_valid splits it into a left and a right triangle; the top and bottom wedges stay empty
    assert m[5, 1] and m[5, 9] and not m[1, 5] and not m[9, 5]


def test_decode_crop_and_runs_match_pycocotools() -> None:
    rng = np.random.default_rng(3)
    for m in random_masks(200, seed=5) + [two_parts(90, 70), ring(64, 64)]:
        rle = masks.encode(m)
        runs = masks.rle_runs(rle)
        assert runs.sum() == m.size
        x, y, w, h = (int(v) for v in masks.bbox(rle))
        np.testing.assert_array_equal(rle_crop.decode_crop(rle, x, y, w, h), m[y:y + h, x:x + w])
        x0, y0 = int(rng.integers(0, m.shape[1])), int(rng.integers(0, m.shape[0]))
        w0, h0 = int(rng.integers(1, m.shape[1] - x0 + 1)), int(rng.integers(1, m.shape[0] - y0 + 1))
        np.testing.assert_array_equal(rle_crop.decode_crop(rle, x0, y0, w0, h0), m[y0:y0 + h0, x0:x0 + w0])
    # large counts (multi-chunk runs, negative deltas) on a big image
    big = np.zeros((3000, 4000), bool)
    big[100:2900, 1234:1300] = True
    big[5:7, 3990:] = True
    rle = masks.encode(big)
    x, y, w, h = (int(v) for v in masks.bbox(rle))
    np.testing.assert_array_equal(rle_crop.decode_crop(rle, x, y, w, h), big[y:y + h, x:x + w])
    polys = rle_crop.coco_polygons_from_rle(rle)
    assert masks.mask_iou(geo.rings_to_mask(polys, 3000, 4000), big) == 1.0


def test_encode_from_the_box_equals_pycocotools() -> None:
    rng = np.random.default_rng(7)
    cases = []
    for i in range(120):
        h, w = (int(v) for v in rng.integers(256, 420, 2))
        m = np.zeros((h, w), bool)
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        bh, bw = int(rng.integers(1, h - y0 + 1)), int(rng.integers(1, max(2, (w - x0) // 3)))
        if i % 3 == 0:
            y0, bh = 0, h  # the box spans whole columns: runs continue from one column to the next
        m[y0:y0 + bh, x0:x0 + bw] = rng.random((bh, bw)) < rng.uniform(0.2, 1.0)
        cases.append(m)
    corner = np.zeros((300, 300), bool)
    corner[299, 299] = True
    cases += [corner, np.zeros((300, 300), bool), np.ones((256, 300), bool)]
    for m in cases:
        expected = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode("ascii")
        assert masks.encode(m) == {"size": list(m.shape), "counts": expected}
        np.testing.assert_array_equal(masks.decode(masks.encode(m)), m)


def _nearest(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(mask.astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_NEAREST).astype(bool)


def test_decode_resized_equals_nearest_resize_of_the_decoded_mask() -> None:
    rng = np.random.default_rng(11)
    sample = random_masks(80, seed=4) + [np.zeros((9, 13), bool), np.ones((17, 5), bool), ring(50, 40)]
    corner = np.zeros((40, 30), bool)
    corner[25:, 12:] = True  # foreground runs that continue from one column into the next
    for m in sample + [corner]:
        rle = masks.encode(m)
        for size in [m.shape, (max(1, m.shape[0] // 3), max(1, m.shape[1] // 2)),
                     (int(rng.integers(1, 90)), int(rng.integers(1, 90)))]:
            ours = masks.decode_resized(rle, size)
            assert ours.shape == size and ours.dtype == bool
            np.testing.assert_array_equal(ours, _nearest(masks.decode(rle), size))
    big = np.zeros((3000, 4000), bool)
    big[100:2900, 1234:1300] = True
    big[:, 3990:] = True
    np.testing.assert_array_equal(masks.decode_resized(masks.encode(big), (1024, 1365)), _nearest(big, (1024, 1365)))


def test_batch_run_decoding_matches_single() -> None:
    sample = random_masks(60, seed=9) + [np.zeros((4, 4), bool), np.ones((7, 3), bool), ring(50, 40)]
    rles = [masks.encode(m) for m in sample]
    batch = masks.rle_runs_batch(rles)
    assert len(batch) == len(rles)
    for m, rle, runs in zip(sample, rles, batch):
        uncompressed = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        assert runs.sum() == m.size
        assert masks.normalize({"size": rle["size"], "counts": [int(v) for v in runs]}) == rle
        assert int(runs[1::2].sum()) == int(mask_utils.area(uncompressed))


def test_coco_polygons_load_in_pycocotools() -> None:
    m = two_parts(120, 160)
    polys = geo.coco_polygons(m)
    rle = mask_utils.merge(mask_utils.frPyObjects(polys, 120, 160))
    assert masks.mask_iou(mask_utils.decode(rle).astype(bool), m) >= 0.98


@pytest.mark.parametrize("tolerance", [-1.0, 0.0])
def test_detail_tolerances(tolerance: float) -> None:
    assert geo.PolygonDetail(tolerance).tolerances() == (0.0,)
    assert geo.PolygonDetail(2.0).tolerances() == (2.0, 1.0, 0.5, 0.0)
