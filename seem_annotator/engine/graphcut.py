"""GrabCut (Rother, Kolmogorov and Blake, SIGGRAPH 2004), the formulation of `cv2.grabCut`, made
cheap enough for a click round.

The model is OpenCV's: per label a Gaussian mixture of five full-covariance colour components, the
unary cost of a pixel its negative log-likelihood under the other label's mixture, the pairwise
cost of two 8-neighbours `gamma / distance * exp(-beta * |colour difference|^2)`, GC_FGD / GC_BGD
pixels held by a cost of `9 * gamma`, k-means (k-means++ start) for the first components, then per
iteration: assign components, re-learn the mixtures, cut. What differs is the cost:

- the graph is kept (`GridCut`): its pairwise edges depend on the image only, so they are built
  once per image, and each cut, of the next iteration or of the next round, starts from the
  previous flow (dynamic graph cuts) instead of from nothing;
- the cut is the Boykov-Kolmogorov max-flow of PyMaxflow, its grid built from whole arrays;
- a mixture is its log-density expanded over quadratic colour features; assigning pixels to
  components, learning the moments and the unaries are one compiled pass over the pixels each
  (grabcut_kernels.py), and unaries are computed only for the pixels the cut decides.

`bench interactive --backend classical,classical-opencv` measures what this is worth in clicks.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import ModuleType

import cv2
import maxflow
import numpy as np

GAMMA = 50.0
HARD = 9 * GAMMA  # the cost that holds GC_FGD / GC_BGD pixels (cv2.grabCut's lambda)
COMPONENTS = 5
BAND = 0.5  # under this fraction of undecided pixels a cut builds only their graph (BandCut)
# (dy, dx) of the four forward 8-neighbours; each edge is stored once, at its first pixel.
OFFSETS = ((0, 1), (1, 0), (1, 1), (1, -1))


@dataclass(frozen=True)
class PairwiseWeights:
    """The smoothness weights of an image, one array (h, w) per forward neighbour in OFFSETS
    (the weight of the edge from (y, x) to (y + dy, x + dx); 0 where that falls off the image)."""

    right: np.ndarray
    down: np.ndarray
    down_right: np.ndarray
    down_left: np.ndarray

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.right, self.down, self.down_right, self.down_left


def _kernels() -> ModuleType:
    """grabcut_kernels, imported on first use: importing numba takes about half a second, which
    belongs to an image's first encode (a background thread), not to the app's start."""
    from seem_annotator.engine import grabcut_kernels

    return grabcut_kernels


def squared_differences(bgr: np.ndarray) -> tuple[list[np.ndarray], float]:
    """Per forward neighbour in OFFSETS, the squared colour difference of each pixel and that
    neighbour (float32 (h, w), 0 where it falls off the image), and GrabCut's beta: the inverse of
    twice their mean over all neighbour pairs."""
    img = bgr.astype(np.float32)
    h, w = img.shape[:2]
    diffs, total, count = [], 0.0, 0
    for dy, dx in OFFSETS:
        d = np.zeros((h, w), np.float32)
        ys = slice(0, h - dy)
        xs = slice(0, w - dx) if dx >= 0 else slice(1, w)
        xs2 = slice(dx, w) if dx >= 0 else slice(0, w - 1)
        diff = img[ys, xs] - img[dy:h, xs2]
        d[ys, xs] = np.einsum("ijk,ijk->ij", diff, diff)
        total += float(d[ys, xs].sum())
        count += d[ys, xs].size
        diffs.append(d)
    return diffs, 0.0 if total <= 0 else count / (2.0 * total)


def edge_weights(d: np.ndarray, beta: float, offset: tuple[int, int]) -> np.ndarray:
    """GrabCut's smoothness weight of edges along `offset` from their squared colour differences `d`
    (any shape): gamma / distance * exp(-beta * d), float32."""
    dy, dx = offset
    scale = GAMMA / (np.sqrt(2.0) if dy and dx else 1.0)
    return (scale * np.exp(-beta * d)).astype(np.float32, copy=False)


def pairwise_weights(bgr: np.ndarray) -> PairwiseWeights:
    """GrabCut's contrast-sensitive smoothness weights of an (h, w, 3) uint8 image (see
    squared_differences for beta)."""
    h, w = bgr.shape[:2]
    diffs, beta = squared_differences(bgr)
    out = []
    for (dy, dx), d in zip(OFFSETS, diffs, strict=True):
        weight = np.zeros((h, w), np.float32)
        ys = slice(0, h - dy)
        xs = slice(0, w - dx) if dx >= 0 else slice(1, w)
        weight[ys, xs] = edge_weights(d[ys, xs], beta, (dy, dx))
        out.append(weight)
    return PairwiseWeights(*out)


def quadratic_features(pixels: np.ndarray) -> np.ndarray:
    """(10, n) features of (n, 3) colours: x_i x_j for i <= j, x_i, 1. A mixture's
    `quadratic_weights` (k, 10) times them give every component's log-likelihood at once, and
    their sums per component are its moments (grabcut_kernels computes both pixel by pixel)."""
    x = pixels.astype(np.float64).T
    out = np.empty((10, x.shape[1]))
    out[0], out[1], out[2] = x[0] * x[0], x[1] * x[1], x[2] * x[2]
    out[3], out[4], out[5] = x[0] * x[1], x[0] * x[2], x[1] * x[2]
    out[6:9] = x
    out[9] = 1.0
    return out


class ColourMixture:
    """A Gaussian mixture of colours (OpenCV GrabCut's GMM: full covariances, a small ridge where
    one would be singular) on planar float64 colours (3, n). Its `quadratic_weights` (k, 10) are
    its log-densities expanded over quadratic_features; the per-pixel loops are grabcut_kernels'."""

    def __init__(self, colours: np.ndarray, components: np.ndarray, k: int = COMPONENTS) -> None:
        self.k = k
        self.fit(colours, components)

    @classmethod
    def of_moments(cls, moments: np.ndarray) -> ColourMixture:
        """The mixture of per-component sums (k, 10) of quadratic_features."""
        mixture = cls.__new__(cls)
        mixture.k = len(moments)
        mixture.fit_moments(moments)
        return mixture

    def fit(self, colours: np.ndarray, components: np.ndarray) -> None:
        """Learn from colours (3, n) and each one's component (n,) in [0, k), or -1 for a colour
        that is not the mixture's."""
        self.fit_moments(_kernels().moments_of(colours, np.asarray(components, np.intp), self.k))

    def refit(self, colours: np.ndarray, member: np.ndarray) -> None:
        """GrabCut's iteration: each member colour (member: bool (n,)) joins its most likely
        component of this mixture, and the mixture is learned again from them."""
        self.fit_moments(_kernels().moments_of_best(colours, member, self.quadratic_weights, self.weights > 0))

    def fit_moments(self, moments: np.ndarray) -> None:
        """Learn from per-component sums (k, 10) of quadratic_features (grabcut_kernels)."""
        counts = moments[:, 9]
        self.weights = counts / max(1.0, counts.sum())
        # Row c: log(weight_c) - log(det_c) / 2 - (x - mu_c)' inv_c (x - mu_c) / 2, expanded.
        # All components at once (stacked 3 x 3 algebra): per-component calls cost more in
        # numpy's overhead than in arithmetic.
        self.quadratic_weights = np.zeros((self.k, 10))
        used = np.nonzero(counts)[0]
        if not len(used):
            return
        m = moments[used] / counts[used, None]
        mean = m[:, 6:9]
        second = m[:, [0, 3, 4, 3, 1, 5, 4, 5, 2]].reshape(-1, 3, 3)
        cov = second - mean[:, :, None] * mean[:, None, :]
        sign, log_det = np.linalg.slogdet(cov)
        # One colour (or a flat line of them), or rounding below zero: cv2.grabCut's ridge.
        flat = (sign <= 0) | (log_det <= np.log(np.finfo(float).eps))
        if flat.any():
            cov[flat] += 0.01 * np.eye(3)
            sign[flat], log_det[flat] = np.linalg.slogdet(cov[flat])
        inv = np.linalg.inv(cov)
        q = self.quadratic_weights[used]
        q[:, 0:3] = -0.5 * inv[:, [0, 1, 2], [0, 1, 2]]
        q[:, 3], q[:, 4], q[:, 5] = -inv[:, 0, 1], -inv[:, 0, 2], -inv[:, 1, 2]
        inv_mean = np.einsum("kij,kj->ki", inv, mean)
        q[:, 6:9] = inv_mean
        q[:, 9] = np.log(self.weights[used]) - 0.5 * log_det - 0.5 * np.einsum("ki,ki->k", mean, inv_mean)
        self.quadratic_weights[used] = q

    def component_log_likelihoods(self, colours: np.ndarray) -> np.ndarray:
        """(k, n): log(weight_c * N_c(x)) of colours (3, n) up to a constant (-inf for empty
        components)."""
        out = self.quadratic_weights @ quadratic_features(colours.T)
        out[self.weights <= 0] = -np.inf
        return out

    def neg_log_likelihood(self, colours: np.ndarray) -> np.ndarray:
        """(n,) float32: -log of the mixture's density (up to a constant) at colours (3, n): the
        unary cost of giving them this mixture's label's opposite."""
        return _kernels().neg_log_mixture(colours, self.quadratic_weights, self.weights > 0)


def kmeans_mixture(colours: np.ndarray, members: np.ndarray, k: int = COMPONENTS, sample: int = 4096
                   ) -> ColourMixture:
    """GrabCut's start: the mixture of k-means (k-means++ start) clusters of the colours (3, n) of
    `members` (bool, (n,)). The centres are found on an even subsample of at most `sample` colours,
    then every member colour joins the nearest."""
    at = np.flatnonzero(members)
    if len(at) <= k:
        components = np.full(members.shape, -1, np.intp)
        components[at] = np.arange(len(at)) % k
        return ColourMixture(colours, components, k)
    step = max(1, len(at) // sample)
    criteria = (cv2.TERM_CRITERIA_MAX_ITER, 10, 0)
    picked = np.ascontiguousarray(colours[:, at[::step]].T, dtype=np.float32)
    _, _, centres = cv2.kmeans(picked, k, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    # The nearest centre is the most likely component of equal spherical Gaussians:
    # -|x - c|^2 = -|x|^2 + 2 c.x - |c|^2, expanded over quadratic_features like a mixture's rows.
    centres = centres.astype(np.float64)
    nearness = np.zeros((k, 10))
    nearness[:, 0:3] = -1.0
    nearness[:, 6:9] = 2.0 * centres
    nearness[:, 9] = -(centres * centres).sum(axis=1)
    return ColourMixture.of_moments(_kernels().moments_of_best(colours, members, nearness, np.ones(k, bool)))


class _KeptFlow:
    """A max-flow graph kept from cut to cut: only its terminal edges change. Terminal capacities
    add up, so a new cut adds the change and lets the solver start from the previous flow and
    search trees (Kohli and Torr's dynamic graph cuts); the cut is still the exact minimum one.
    Subclasses set `_graph` and `_nodes` (the node ids, any shape)."""

    _graph: maxflow.GraphFloat
    _nodes: np.ndarray
    _terminals: tuple[np.ndarray, np.ndarray] | None = None

    def _solve(self, source: np.ndarray, sink: np.ndarray) -> np.ndarray:
        """True where a node ends on the source side; source / sink float32, shaped as `_nodes`."""
        if self._terminals is None:
            self._graph.add_grid_tedges(self._nodes, source, sink)
            self._graph.maxflow()
        else:
            self._graph.add_grid_tedges(self._nodes, source - self._terminals[0], sink - self._terminals[1])
            self._graph.mark_grid_nodes(self._nodes)
            self._graph.maxflow(reuse_trees=True)
        self._terminals = source, sink
        return ~self._graph.get_grid_segments(self._nodes)


class _GridFlow(_KeptFlow):
    """One kept max-flow graph of an image grid: its pairwise edges, built once."""

    def __init__(self, shape: tuple[int, int], weights: PairwiseWeights, neighbours: int) -> None:
        self._graph = maxflow.GraphFloat()
        self._nodes = self._graph.add_grid_nodes(shape)
        for (dy, dx), weight in zip(OFFSETS, weights.arrays(), strict=True):
            if neighbours == 4 and dy and dx:
                continue
            structure = np.zeros((3, 3))
            structure[1 + dy, 1 + dx] = 1
            self._graph.add_grid_edges(self._nodes, weights=weight, structure=structure, symmetric=True)


class GridCut:
    """The min-cut graph of one image grid, kept from cut to cut.

    Its pairwise edges depend on the image only, so they are built once; each cut changes only
    the terminal edges (_KeptFlow). Later iterations of one GrabCut, and later rounds on the same
    image, move few pixels: re-cutting costs a fraction of a fresh cut. Not thread-safe: hold
    `lock` while cutting.

    With `separate_openings` a second graph takes every GrabCut's first iteration (`cut(...,
    opening=True)`). A round starts its colour models from its seeds, so its first cut is
    nearest the previous round's first cut, not its last: where clicks change little (a stuck
    object) a round's max-flow falls to about a fifth (COCO's dining table: 250 -> 55 ms); the
    cuts are the same.
    Twice the memory (about 20 MB a graph on a 320-pixel grid, 4-connected)."""

    def __init__(self, bgr: np.ndarray, neighbours: int = 8, separate_openings: bool = False) -> None:
        """neighbours: 8 (cv2.grabCut's graph) or 4 (only the horizontal and vertical edges, with
        their 8-neighbour weights: half the edges, so a cut costs less, and a weaker smoothness
        that follows thin parts better; what the classical backend uses)."""
        if neighbours not in (4, 8):
            raise ValueError(f"a grid has 4 or 8 neighbours, not {neighbours}")
        self.shape = bgr.shape[:2]
        self.colours = np.ascontiguousarray(bgr.reshape(-1, 3).T, dtype=np.float64)  # planar (3, h * w)
        weights = pairwise_weights(bgr)
        self._flow = _GridFlow(self.shape, weights, neighbours)
        self._opening = _GridFlow(self.shape, weights, neighbours) if separate_openings else self._flow
        self.lock = threading.Lock()

    def colours_at(self, which: np.ndarray) -> np.ndarray:
        """The planar colours (3, m) of the pixels where `which` (bool, (h * w,)) holds."""
        return self.colours[:, which]

    def cut(self, source: np.ndarray, sink: np.ndarray, opening: bool = False) -> np.ndarray:
        """The minimum cut for these terminal capacities (h, w): True on the source (foreground)
        side. `opening`: a GrabCut's first iteration (its own graph with `separate_openings`)."""
        flow = self._opening if opening else self._flow
        return flow._solve(source.astype(np.float32), sink.astype(np.float32))


class BandCut(_KeptFlow):
    """The min-cut graph of only the undecided (GC_PR_*) pixels of a label map, for cuts where
    most pixels are decided (the fine refinement's band). A decided neighbour's edge is folded into
    the undecided pixel's terminal edge: its weight is what separating the two costs, so it joins
    the source side's capacity for a GC_FGD neighbour and the sink side's for a GC_BGD one (a
    decided pixel's own hard cost, 9 * gamma, exceeds the sum of its edges, so it never moves).
    The minimum cut is the grid's, on a graph of the band's size. Kept across the iterations of
    one GrabCut like a GridCut; not thread-safe."""

    def __init__(self, bgr: np.ndarray, labels: np.ndarray) -> None:
        self.shape = labels.shape
        self._colours = bgr.reshape(-1, 3)
        self._free = (labels == cv2.GC_PR_FGD) | (labels == cv2.GC_PR_BGD)
        self._hard_fg = labels == cv2.GC_FGD
        # beta is the whole crop's, as cv2.grabCut's; only edges with an undecided end are made.
        a, b, weights, fold_source, fold_sink, count = _kernels().band_graph(
            np.ascontiguousarray(bgr), np.ascontiguousarray(labels), np.array(OFFSETS), GAMMA,
            cv2.GC_PR_BGD, cv2.GC_PR_FGD, cv2.GC_FGD, cv2.GC_BGD)
        self._graph = maxflow.GraphFloat()
        self._graph.add_nodes(count)
        self._nodes = np.arange(count)  # a new graph numbers its nodes from 0
        self._graph.add_edges(a, b, weights, weights)
        self._fold = fold_source.astype(np.float32), fold_sink.astype(np.float32)

    def colours_at(self, which: np.ndarray) -> np.ndarray:
        """The planar colours (3, m) of the pixels where `which` (bool, (h * w,)) holds, made for
        only those (a crop's sample and band are a fraction of it)."""
        return np.ascontiguousarray(self._colours[which].T, dtype=np.float64)

    def cut(self, source: np.ndarray, sink: np.ndarray, opening: bool = False) -> np.ndarray:
        """As GridCut.cut: True on the source (foreground) side, for the whole label map (one
        graph for every iteration: a band's graph lives for one GrabCut)."""
        source = source[self._free].astype(np.float32) + self._fold[0]
        sink = sink[self._free].astype(np.float32) + self._fold[1]
        out = self._hard_fg.copy()
        out[self._free] = self._solve(source, sink)
        return out


def fitting_sample(shape: tuple[int, int], budget: int) -> np.ndarray:
    """The pixels the colour models learn from: every pixel, or (when there are more than
    `budget`) those of a regular grid, every s-th row and column, with at most about `budget`.
    bool (h * w,)."""
    h, w = shape
    if budget <= 0 or h * w <= budget:
        return np.ones(h * w, bool)
    stride = int(np.ceil(np.sqrt(h * w / budget)))
    sample = np.zeros(shape, bool)
    sample[stride // 2::stride, stride // 2::stride] = True
    return sample.ravel()


def grabcut(bgr: np.ndarray, gc: np.ndarray, iterations: int, grid: GridCut | BandCut | None = None,
            fitting: int = 0, neighbours: int = 8) -> np.ndarray:
    """GrabCut from a GC_* label map (GC_BGD, GC_FGD, GC_PR_BGD, GC_PR_FGD), like
    `cv2.grabCut(..., GC_INIT_WITH_MASK)`: the label map (uint8, (h, w)) after `iterations`
    rounds; only GC_PR_* pixels change. `fitting`: the colour models learn from at most about this
    many pixels, a regular grid of them (0: from all, as cv2.grabCut does). `grid`: this image's
    kept GridCut (the caller holds its lock), else one is made for this call (`neighbours`: 8 or 4;
    a mostly decided map's BandCut is always 8-connected).
    Deterministic for a fresh grid (k-means starts from a fixed seed); a kept grid can resolve exact
    ties differently."""
    labels = gc.copy()
    is_fg = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    free = (labels == cv2.GC_PR_FGD) | (labels == cv2.GC_PR_BGD)
    if iterations <= 0 or not free.any() or is_fg.all() or not is_fg.any():
        return labels
    if grid is None:
        # Mostly decided (a band): a graph of the undecided pixels alone; else the whole grid.
        grid = BandCut(bgr, labels) if np.count_nonzero(free) < BAND * free.size else GridCut(bgr, neighbours)
    sample = fitting_sample(labels.shape, fitting)
    learn = grid.colours_at(sample)  # the pixels the models learn from
    free_flat = free.ravel()
    undecided = grid.colours_at(free_flat)  # the pixels the cut decides: the only unaries needed
    cv2.setRNGSeed(0)
    fg_learn = is_fg.ravel()[sample]
    if not fg_learn.any() or fg_learn.all():
        sample[:] = True  # the sample misses one label (a tiny object): learn from every pixel
        learn, fg_learn = grid.colours_at(sample), is_fg.ravel()
    fg_model = kmeans_mixture(learn, fg_learn)
    bg_model = kmeans_mixture(learn, ~fg_learn)
    source = np.zeros(labels.size, np.float32)
    sink = np.zeros(labels.size, np.float32)
    source[(labels == cv2.GC_FGD).ravel()] = HARD
    sink[(labels == cv2.GC_BGD).ravel()] = HARD
    for iteration in range(iterations):
        fg_learn = ((labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)).ravel()[sample]
        if fg_learn.all() or not fg_learn.any():
            break  # one label took everything: no colour model left to compare with
        fg_model.refit(learn, fg_learn)
        bg_model.refit(learn, ~fg_learn)
        # A pixel's cost of being background (its source edge) is its unlikeliness as background.
        source[free_flat] = bg_model.neg_log_likelihood(undecided)
        sink[free_flat] = fg_model.neg_log_likelihood(undecided)
        fg = grid.cut(source.reshape(labels.shape), sink.reshape(labels.shape), opening=iteration == 0)
        labels[free & fg] = cv2.GC_PR_FGD
        labels[free & ~fg] = cv2.GC_PR_BGD
    return labels
