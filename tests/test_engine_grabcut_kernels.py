"""GrabCut's compiled loops (engine/grabcut_kernels.py) beyond what test_engine_graphcut checks
through the mixtures: a band's graph against a plain reconstruction, and a start with nowhere to
cache the compiled code."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np

from seem_annotator.engine import grabcut_kernels, graphcut


def test_band_graph_matches_the_edges_and_folds_made_pixel_by_pixel() -> None:
    rng = np.random.default_rng(7)
    h, w = 9, 11
    bgr = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    labels = rng.choice([cv2.GC_BGD, cv2.GC_FGD, cv2.GC_PR_BGD, cv2.GC_PR_FGD], (h, w)).astype(np.uint8)
    a, b, weights, fold_source, fold_sink, count = grabcut_kernels.band_graph(
        bgr, labels, np.array(graphcut.OFFSETS), graphcut.GAMMA, cv2.GC_PR_BGD, cv2.GC_PR_FGD, cv2.GC_FGD,
        cv2.GC_BGD)
    img = bgr.astype(float)
    pairs = [((y, x), (y + dy, x + dx)) for dy, dx in graphcut.OFFSETS for y in range(h) for x in range(w)
             if 0 <= y + dy < h and 0 <= x + dx < w]
    beta = len(pairs) / (2 * sum(((img[p] - img[q]) ** 2).sum() for p, q in pairs))
    free = (labels == cv2.GC_PR_BGD) | (labels == cv2.GC_PR_FGD)
    ids = -np.ones((h, w), int)
    ids[free] = np.arange(free.sum())
    edges, source, sink = [], np.zeros(count), np.zeros(count)
    for p, q in pairs:
        diagonal = p[0] != q[0] and p[1] != q[1]
        weight = graphcut.GAMMA / (np.sqrt(2) if diagonal else 1) * np.exp(-beta * ((img[p] - img[q]) ** 2).sum())
        if free[p] and free[q]:
            edges.append((ids[p], ids[q], weight))
        elif free[p] or free[q]:
            own, other = (p, q) if free[p] else (q, p)
            (source if labels[other] == cv2.GC_FGD else sink)[ids[own]] += weight
    assert count == free.sum()
    assert [(int(i), int(j)) for i, j, _ in edges] == list(zip(a.tolist(), b.tolist(), strict=True))
    assert np.allclose([wt for _, _, wt in edges], weights, rtol=1e-6)
    assert np.allclose(source, fold_source) and np.allclose(sink, fold_sink)


def test_a_process_with_nowhere_to_cache_compiles_anew_instead_of_failing() -> None:
    """A read-only install and home leave numba no cache location: it raises at decoration (so at
    import) unless told otherwise. Simulated with a cache locator that never applies."""
    env = dict(os.environ, NUMBA_CACHE_LOCATOR_CLASSES="numba.core.caching.ZipCacheLocator")
    code = ("import numpy as np\n"
            "from seem_annotator.engine import graphcut\n"
            "colours = np.array([[10.0, 12, 200], [20, 22, 210], [30, 31, 220]])\n"
            "m = graphcut.ColourMixture(colours, np.array([0, 0, 1]), k=2)\n"
            "print(m.neg_log_likelihood(colours).round(3).tolist())\n")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    colours = np.array([[10.0, 12, 200], [20, 22, 210], [30, 31, 220]])
    here = graphcut.ColourMixture(colours, np.array([0, 0, 1]), k=2).neg_log_likelihood(colours).round(3).tolist()
    assert done.stdout.strip() == str(here)


def test_the_backend_imports_without_numba_which_its_first_encode_loads() -> None:
    """numba takes about half a second to import: not on the app's start (the window builds the
    classical backend on its own thread), but with an image's first encode (a background thread)."""
    code = ("import sys\n"
            "import numpy as np\n"
            "from seem_annotator.engine.classical_backend import ClassicalBackend\n"
            "from seem_annotator.engine.types import ImageInput\n"
            "backend = ClassicalBackend(second_core=False)\n"
            "print('numba' in sys.modules)\n"
            "backend.encode(ImageInput(key='k', pixels=np.zeros((20, 30, 3), np.uint8), full_size=(20, 30)))\n"
            "print('numba' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True"]
