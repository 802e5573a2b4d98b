"""Our GrabCut (engine/graphcut.py): OpenCV's model, its own cut, graphs kept between cuts."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from seem_annotator.engine import graphcut

BERKELEY = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "Berkeley"


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A noisy two-colour object (an ellipse with a differently coloured stripe) on a noisy
    two-colour background: (bgr uint8, truth bool)."""
    rng = np.random.default_rng(seed)
    h, w = 120, 160
    img = np.zeros((h, w, 3), np.float32)
    img[:, : w // 2] = (40, 120, 60)
    img[:, w // 2:] = (90, 90, 90)
    truth = np.zeros((h, w), np.uint8)
    cv2.ellipse(truth, (80, 60), (40, 28), 15, 0, 360, 1, -1)
    truth = truth.astype(bool)
    img[truth] = (200, 60, 40)
    stripe = truth & (np.abs(np.arange(w)[None, :] - 80) < 6)
    img[stripe] = (230, 200, 60)
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), truth


def _labels(truth: np.ndarray) -> np.ndarray:
    """The textbook start: a border of background, a hard disc and a probable disc in the object."""
    gc = np.full(truth.shape, cv2.GC_PR_BGD, np.uint8)
    gc[:2], gc[-2:], gc[:, :2], gc[:, -2:] = cv2.GC_BGD, cv2.GC_BGD, cv2.GC_BGD, cv2.GC_BGD
    cv2.circle(gc, (70, 60), 14, cv2.GC_PR_FGD, -1)
    cv2.circle(gc, (70, 60), 3, cv2.GC_FGD, -1)
    return gc


def _fg(gc: np.ndarray) -> np.ndarray:
    return (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_mixture_log_likelihoods_match_the_gaussian_densities() -> None:
    rng = np.random.default_rng(1)
    colours = np.concatenate([rng.normal((30, 80, 200), (5, 9, 4), (400, 3)),
                              rng.normal((150, 20, 60), (12, 3, 7), (600, 3))])
    components = np.repeat([0, 1], [400, 600])
    mixture = graphcut.ColourMixture(np.ascontiguousarray(colours.T), components, k=2)
    got = mixture.component_log_likelihoods(colours.T)
    for c, rows in ((0, slice(0, 400)), (1, slice(400, 1000))):
        own = colours[rows]
        mean = own.mean(axis=0)
        cov = np.cov(own, rowvar=False, bias=True)
        d = colours - mean
        expected = (np.log(len(own) / 1000) - 0.5 * np.log(np.linalg.det(cov))
                    - 0.5 * np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d))
        assert np.allclose(got[c], expected, rtol=1e-9, atol=1e-6)


def test_mixture_skips_empty_components_and_pixels_that_are_not_its_own() -> None:
    colours = np.array([[10.0, 20, 30], [12, 21, 33], [11, 19, 29], [200, 200, 200]]).T.copy()
    mixture = graphcut.ColourMixture(colours, np.array([0, 0, 0, -1]), k=3)
    assert np.allclose(mixture.weights, [1.0, 0.0, 0.0])
    comp = mixture.component_log_likelihoods(colours)
    assert np.isneginf(comp[1:]).all() and np.isfinite(comp[0]).all()
    # The far colour is far less likely than the cluster's own colours.
    assert comp[0, 3] < comp[0, :3].min() - 100


def _mixture_with_ties(rng: np.random.Generator) -> graphcut.ColourMixture:
    """A 5-component mixture of grey levels whose component 2 is empty and whose components 0
    and 3 are the same Gaussian (every colour ties between them)."""
    colours = np.repeat(rng.integers(0, 256, (1, 3000)).astype(np.float64), 3, axis=0)
    colours += rng.normal(0, 2, colours.shape)
    components = rng.choice([0, 1, 4], 3000)
    mixture = graphcut.ColourMixture(colours, components)
    mixture.quadratic_weights[3] = mixture.quadratic_weights[0]
    mixture.weights[3] = mixture.weights[0]
    return mixture


def test_refit_counts_each_member_for_its_most_likely_component_ties_to_the_first() -> None:
    rng = np.random.default_rng(3)
    mixture = _mixture_with_ties(rng)
    colours = rng.integers(0, 256, (3, 2000)).astype(np.float64)
    member = rng.random(2000) < 0.6
    expected = np.argmax(mixture.component_log_likelihoods(colours), axis=0)  # numpy: ties to the first
    reference = graphcut.ColourMixture(colours, np.where(member, expected, -1))
    mixture.refit(colours, member)
    assert 3 not in expected and (expected == 0).any()
    assert np.allclose(mixture.weights, reference.weights, rtol=0, atol=1e-12)
    assert np.allclose(mixture.quadratic_weights, reference.quadratic_weights, rtol=1e-9, atol=1e-9)


def test_neg_log_likelihood_is_minus_the_log_of_the_summed_densities() -> None:
    rng = np.random.default_rng(4)
    mixture = _mixture_with_ties(rng)
    colours = np.concatenate([rng.integers(0, 256, (3, 500)), [[0, 255], [255, 0], [0, 0]]], axis=1).astype(float)
    comp = mixture.component_log_likelihoods(colours)
    top = comp.max(axis=0)
    expected = -(top + np.log(np.exp(comp - top).sum(axis=0)))  # far colours: terms far below 1e-300
    got = mixture.neg_log_likelihood(colours)
    assert got.dtype == np.float32 and np.isfinite(got).all()
    assert np.allclose(got, expected, rtol=1e-6, atol=1e-4)
    empty = graphcut.ColourMixture(colours, np.full(colours.shape[1], -1))
    assert np.isposinf(empty.neg_log_likelihood(colours)).all()


def test_kmeans_mixture_finds_separate_colour_clusters_among_its_members() -> None:
    rng = np.random.default_rng(6)
    centres = np.array([[20.0, 200, 40], [180, 30, 90], [90, 90, 250]])
    colours = np.concatenate([rng.normal(c, 4, (700, 3)) for c in centres] + [rng.normal(128, 4, (900, 3))]).T.copy()
    members = np.arange(colours.shape[1]) < 2100  # the grey cluster is not the mixture's
    mixture = graphcut.kmeans_mixture(colours, members, k=3)
    best = np.argmax(mixture.component_log_likelihoods(centres.T), axis=1)
    assert sorted(best.tolist()) == [0, 1, 2]  # each cluster's centre is its own component's
    assert np.allclose(np.sort(mixture.weights), [1 / 3] * 3, atol=0.01)
    few = graphcut.kmeans_mixture(colours, np.arange(colours.shape[1]) < 2)  # fewer colours than components
    assert np.count_nonzero(few.weights) == 2


@pytest.mark.parametrize("neighbours", [4, 8])
def test_a_grid_has_the_edges_of_its_neighbourhood(neighbours: int) -> None:
    h, w = 7, 9
    grid = graphcut.GridCut(np.random.default_rng(0).integers(0, 256, (h, w, 3)).astype(np.uint8), neighbours)
    straight = h * (w - 1) + (h - 1) * w
    diagonal = 2 * (h - 1) * (w - 1)
    edges = straight if neighbours == 4 else straight + diagonal
    assert grid._flow._graph.get_edge_count() == 2 * edges  # PyMaxflow counts both directions of an edge


def test_a_grid_refuses_other_neighbourhoods() -> None:
    with pytest.raises(ValueError, match="4 or 8"):
        graphcut.GridCut(np.zeros((4, 4, 3), np.uint8), 6)


def test_grabcut_finds_the_object_as_opencv_does() -> None:
    bgr, truth = _scene()
    gc = _labels(truth)
    ours = _fg(graphcut.grabcut(bgr, gc, 5))
    theirs = gc.copy()
    cv2.setRNGSeed(0)
    cv2.grabCut(bgr, theirs, None, np.zeros((1, 65)), np.zeros((1, 65)), 5, cv2.GC_INIT_WITH_MASK)
    assert _iou(ours, truth) > 0.9
    assert _iou(ours, _fg(theirs)) > 0.95


def test_hard_labels_hold_and_only_probable_pixels_change() -> None:
    bgr, truth = _scene()
    gc = _labels(truth)
    gc[55:65, 110:118] = cv2.GC_FGD  # a hard foreground patch in the background
    gc[58:62, 78:82] = cv2.GC_BGD  # a hard background patch inside the object
    out = graphcut.grabcut(bgr, gc, 5)
    assert (out[gc == cv2.GC_FGD] == cv2.GC_FGD).all()
    assert (out[gc == cv2.GC_BGD] == cv2.GC_BGD).all()
    assert np.isin(out[(gc == cv2.GC_PR_FGD) | (gc == cv2.GC_PR_BGD)], (cv2.GC_PR_FGD, cv2.GC_PR_BGD)).all()


def test_nothing_to_decide_returns_the_labels_unchanged() -> None:
    bgr, truth = _scene()
    only_bg = np.full(truth.shape, cv2.GC_PR_BGD, np.uint8)
    assert np.array_equal(graphcut.grabcut(bgr, only_bg, 5), only_bg)
    gc = _labels(truth)
    assert np.array_equal(graphcut.grabcut(bgr, gc, 0), gc)


def test_a_kept_grid_answers_as_a_fresh_one_after_other_cuts() -> None:
    """Dynamic cuts: whatever was cut on the kept graph before, the next cut is the exact minimum
    cut of its own problem."""
    bgr, truth = _scene(2)
    first = _labels(truth)
    second = np.full(truth.shape, cv2.GC_PR_BGD, np.uint8)
    second[:2], second[-2:], second[:, :2], second[:, -2:] = (cv2.GC_BGD,) * 4
    cv2.circle(second, (95, 50), 10, cv2.GC_PR_FGD, -1)
    cv2.circle(second, (95, 50), 3, cv2.GC_FGD, -1)
    cv2.circle(second, (70, 60), 4, cv2.GC_BGD, -1)  # a negative click where the first one was
    kept = graphcut.GridCut(bgr)
    for gc in (first, second, first):
        with kept.lock:
            on_kept = graphcut.grabcut(bgr, gc, 4, kept)
        fresh = graphcut.grabcut(bgr, gc, 4)
        assert _iou(_fg(on_kept), _fg(fresh)) > 0.999


def test_a_grid_with_separate_openings_cuts_each_grabcuts_first_iteration_on_its_own_graph() -> None:
    """The opening graph takes every GrabCut's first iteration, the other graph the rest; the
    labels are the exact minimum cuts all the same (those of a grid with one graph)."""
    bgr, truth = _scene(2)
    first = _labels(truth)
    second = first.copy()
    cv2.circle(second, (70, 60), 4, cv2.GC_BGD, -1)  # a negative click on the object
    one = graphcut.GridCut(bgr, 4)
    two = graphcut.GridCut(bgr, 4, separate_openings=True)
    assert one._opening is one._flow and two._opening is not two._flow
    for gc in (first, second, first):
        with one.lock, two.lock:
            on_one = graphcut.grabcut(bgr, gc, 3, one)
            on_two = graphcut.grabcut(bgr, gc, 3, two)
        assert _iou(_fg(on_one), _fg(on_two)) > 0.999
        # Each graph holds the terminal capacities of its own last cut: the first iteration's on
        # the opening graph, the third's on the other.
        assert not np.array_equal(two._opening._terminals[0], two._flow._terminals[0])
        assert np.array_equal(two._flow._terminals[0], one._flow._terminals[0])


def test_pairwise_weights_are_zero_off_the_image_and_weaker_across_edges() -> None:
    bgr, truth = _scene()
    weights = graphcut.pairwise_weights(bgr)
    assert (weights.right[:, -1] == 0).all() and (weights.down[-1] == 0).all()
    assert (weights.down_left[:, 0] == 0).all() and (weights.down_right[:, -1] == 0).all()
    across = truth[:, :-1] != truth[:, 1:]  # the object's outline: strong colour change
    assert np.median(weights.right[:, :-1][across]) < 0.2 * np.median(weights.right[:, :-1][~across])
    # Flat colour: every edge at its full weight, diagonals weaker by sqrt(2).
    flat = graphcut.pairwise_weights(np.full((8, 8, 3), 100, np.uint8))
    assert np.allclose(flat.right[:, :-1], graphcut.GAMMA)
    assert np.allclose(flat.down_right[:-1, :-1], graphcut.GAMMA / np.sqrt(2))


@pytest.mark.skipif(not BERKELEY.is_dir(), reason="needs ../shared/data/Berkeley")
def test_on_a_real_photo_it_agrees_with_opencv() -> None:
    """On a real Berkeley photo at the backend's working size, a first click's GrabCut agrees with
    cv2.grabCut's."""
    image = cv2.imread(str(BERKELEY / "images" / "102061.jpg"))
    truth = cv2.imread(str(BERKELEY / "masks" / "102061.png"))[..., 2] > 128
    factor = 320 / max(image.shape[:2])
    size = (round(image.shape[1] * factor), round(image.shape[0] * factor))
    bgr = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    truth = cv2.resize(truth.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    dist = cv2.distanceTransform(truth.astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    gc = np.full(truth.shape, cv2.GC_PR_BGD, np.uint8)
    gc[:2], gc[-2:], gc[:, :2], gc[:, -2:] = (cv2.GC_BGD,) * 4
    cv2.circle(gc, (int(x), int(y)), 13, cv2.GC_PR_FGD, -1)
    cv2.circle(gc, (int(x), int(y)), 3, cv2.GC_FGD, -1)
    ours = _fg(graphcut.grabcut(bgr, gc, 5))
    theirs = gc.copy()
    cv2.setRNGSeed(0)
    cv2.grabCut(bgr, theirs, None, np.zeros((1, 65)), np.zeros((1, 65)), 5, cv2.GC_INIT_WITH_MASK)
    assert _iou(ours, _fg(theirs)) > 0.95


def test_fitting_sample_is_a_regular_grid_within_the_budget() -> None:
    assert graphcut.fitting_sample((40, 50), 0).all()
    assert graphcut.fitting_sample((40, 50), 5000).all()
    sample = graphcut.fitting_sample((300, 400), 10000).reshape(300, 400)
    assert 0.5 * 10000 <= sample.sum() <= 10000
    rows, cols = np.nonzero(sample.any(axis=1))[0], np.nonzero(sample.any(axis=0))[0]
    assert len(set(np.diff(rows))) == 1 and len(set(np.diff(cols))) == 1  # evenly spread


def test_colour_models_from_a_sample_cut_the_same_object() -> None:
    bgr, truth = _scene(3)
    gc = _labels(truth)
    full = _fg(graphcut.grabcut(bgr, gc, 5))
    sampled = _fg(graphcut.grabcut(bgr, gc, 5, fitting=2000))
    assert _iou(sampled, full) > 0.97 and _iou(sampled, truth) > 0.9
    # A sample that misses the only foreground pixels falls back to learning from every pixel.
    tiny = np.full(truth.shape, cv2.GC_PR_BGD, np.uint8)
    tiny[:2], tiny[-2:], tiny[:, :2], tiny[:, -2:] = (cv2.GC_BGD,) * 4
    tiny[61, 71] = cv2.GC_FGD
    out = graphcut.grabcut(bgr, tiny, 3, fitting=500)
    assert out[61, 71] == cv2.GC_FGD


def test_a_band_cut_is_the_grid_cut_of_its_undecided_pixels() -> None:
    """BandCut folds decided neighbours into terminal edges: the same minimum cut as the whole
    grid's, for a band of undecided pixels around a coarse outline (the fine refinement's case)."""
    bgr, truth = _scene(4)
    coarse = cv2.dilate(truth.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)  # too big
    inner = cv2.erode(coarse.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    near = cv2.dilate(coarse.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    gc = np.full(truth.shape, cv2.GC_BGD, np.uint8)
    gc[near] = cv2.GC_PR_BGD
    gc[coarse] = cv2.GC_PR_FGD
    gc[inner] = cv2.GC_FGD
    free = (gc == cv2.GC_PR_BGD) | (gc == cv2.GC_PR_FGD)
    assert free.mean() < graphcut.BAND  # grabcut() would take a BandCut here
    band = graphcut.BandCut(bgr, gc)
    rng = np.random.default_rng(0)
    for _ in range(3):  # different terminal costs, the later ones re-cut from the kept flow
        source = rng.uniform(0, 30, truth.shape).astype(np.float32)
        sink = rng.uniform(0, 30, truth.shape).astype(np.float32)
        source[gc == cv2.GC_FGD], sink[gc == cv2.GC_FGD] = graphcut.HARD, 0
        source[gc == cv2.GC_BGD], sink[gc == cv2.GC_BGD] = 0, graphcut.HARD
        on_band = band.cut(source, sink)
        on_grid = graphcut.GridCut(bgr).cut(source, sink)
        assert np.array_equal(on_band, on_grid)
    # And the whole GrabCut through it takes the object's outline back from the too-big start.
    out = _fg(graphcut.grabcut(bgr, gc, 2))
    assert _iou(out, truth) > _iou(coarse, truth) and _iou(out, truth) > 0.93


@pytest.mark.parametrize("kind", ["one colour", "grey noise", "two flat colours", "black 3x3"])
def test_degenerate_colours_give_finite_costs_and_a_cut(kind: str) -> None:
    """Images whose colours fill no volume (a flat colour, greys on a line) make singular
    covariances: the ridge keeps every cost finite, with no warning, and the seeds hold."""
    rng = np.random.default_rng(5)
    if kind == "one colour":
        bgr = np.full((40, 50, 3), 128, np.uint8)
    elif kind == "grey noise":
        bgr = np.repeat(rng.integers(0, 256, (40, 50, 1), dtype=np.uint8), 3, axis=2)
    elif kind == "two flat colours":
        bgr = np.full((40, 50, 3), 10, np.uint8)
        bgr[:, 25:] = 240
    else:
        bgr = np.zeros((3, 3, 3), np.uint8)
    h, w = bgr.shape[:2]
    gc = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    gc[0], gc[:, 0] = cv2.GC_BGD, cv2.GC_BGD
    gc[h // 2, w // 2 - (w > 3) * 10] = cv2.GC_FGD
    colours = np.ascontiguousarray(bgr.reshape(-1, 3).T, dtype=np.float64)
    mixture = graphcut.ColourMixture(colours, np.zeros(h * w, int))
    with np.errstate(all="raise"):
        assert np.isfinite(mixture.component_log_likelihoods(colours)[0]).all()
        assert np.isfinite(mixture.neg_log_likelihood(colours)).all()
    out = graphcut.grabcut(bgr, gc, 5)
    assert out[gc == cv2.GC_FGD].tolist() == [cv2.GC_FGD] and (out[gc == cv2.GC_BGD] == cv2.GC_BGD).all()
