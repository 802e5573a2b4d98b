"""`seem-annotator bench export`: COCO export speed against the RLE-encoding floor.

N realistic object masks are made from the real ground-truth masks in `../shared/data` (Berkeley
and COCO_MVal objects, randomly scaled, rotated, flipped and moved; a share get holes punched in or a
second part added), or synthesised blobs when that data is absent. In the same run it times

* `rle_floor_s`: bare `pycocotools.mask.encode` of every mask (uint8 Fortran arrays prepared
  beforehand, so only the encoding is timed): the least work any COCO mask export must do;
* `export_s`: `export_coco` of a Dataset holding the same masks as stored RLE (what
  `seem-annotator export coco` does after reading the project): polygon-or-RLE decision per mask,
  area, bbox, JSON, atomic write with fsync.

`ratio = export_s / rle_floor_s`; the target is <= 3.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from seem_annotator.core.records import AnnotationRecord, Dataset, ImageRecord, LabelRecord
from seem_annotator.formats import atomic
from seem_annotator.formats.coco import export_coco
from seem_annotator.paths import repo_shared_dir

MASKS_PER_IMAGE = 8
CHUNK = 200


def _source_masks(data_dir: Path) -> list[np.ndarray]:
    """Real object masks (bool, cropped to their bounding box) from the shared data sets."""
    files = sorted((data_dir / "Berkeley" / "masks").glob("*.png")) + \
        sorted((data_dir / "COCO_MVal_subset" / "gt").glob("*.png"))
    out = []
    for path in files:
        try:
            arr = np.asarray(Image.open(path))
        except OSError:
            continue
        fg = (arr[..., 0] if arr.ndim == 3 else arr) > 128
        rows, cols = np.flatnonzero(fg.any(1)), np.flatnonzero(fg.any(0))
        if rows.size:
            out.append(fg[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
    return out


def _synthetic_source(rng: np.random.Generator) -> np.ndarray:
    """A blob: a few overlapping ellipses and a random polygon."""
    size = int(rng.integers(40, 300))
    m = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        center = (int(rng.integers(size // 4, 3 * size // 4)), int(rng.integers(size // 4, 3 * size // 4)))
        axes = (int(rng.integers(size // 8, size // 2)), int(rng.integers(size // 8, size // 2)))
        cv2.ellipse(m, center, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    pts = rng.integers(0, size, size=(int(rng.integers(3, 9)), 2)).astype(np.int32)
    cv2.fillPoly(m, [cv2.convexHull(pts)], 1)
    return m.astype(bool)


class MaskMaker:
    """Deterministic stream of realistic (H, W) uint8 Fortran masks."""

    def __init__(self, seed: int = 0, height: int = 480, width: int = 640) -> None:
        self.rng = np.random.default_rng(seed)
        self.height, self.width = height, width
        self.sources = _source_masks(repo_shared_dir() / "data")
        self.synthetic = not self.sources

    def _placed(self) -> np.ndarray:
        rng = self.rng
        src = self.sources[int(rng.integers(len(self.sources)))] if self.sources else _synthetic_source(rng)
        src = src.astype(np.uint8)
        h, w = self.height, self.width
        # object sizes as in photos: from small (~2% of the short side) to most of the frame
        target = float(np.exp(rng.uniform(np.log(0.04), np.log(0.8)))) * min(h, w)
        scale = target / max(src.shape)
        angle = float(rng.uniform(-30, 30))
        if rng.random() < 0.5:
            src = src[:, ::-1]
        cx, cy = float(rng.uniform(0.15, 0.85) * w), float(rng.uniform(0.15, 0.85) * h)
        mat = cv2.getRotationMatrix2D((src.shape[1] / 2, src.shape[0] / 2), angle, scale)
        mat[0, 2] += cx - src.shape[1] / 2
        mat[1, 2] += cy - src.shape[0] / 2
        return cv2.warpAffine(np.ascontiguousarray(src), mat, (w, h), flags=cv2.INTER_NEAREST)

    def make(self) -> np.ndarray:
        rng = self.rng
        mask = self._placed()
        kind = rng.random()
        if kind < 0.15:  # a second part (occluded object seen in two pieces)
            mask |= self._placed()
        elif kind < 0.30:  # a hole (handle, gap between arm and body)
            ys, xs = np.nonzero(mask)
            if ys.size > 400:
                i = int(rng.integers(ys.size))
                r = max(2, int(np.sqrt(ys.size) * rng.uniform(0.05, 0.15)))
                cv2.circle(mask, (int(xs[i]), int(ys[i])), r, 0, -1)
        if not mask.any():
            mask[self.height // 2, self.width // 2] = 1
        return np.asfortranarray(mask)


def run(n_masks: int, seed: int = 0, repeats: int = 3, out_dir: Path | None = None) -> dict:
    """Generate the masks, time the floor and the export (best of `repeats` each, so that a busy
    machine's stalls do not decide the ratio); return the figures."""
    if n_masks < 1:
        raise ValueError("--masks must be at least 1")
    maker = MaskMaker(seed)
    rles: list[dict] = []
    floor = floor_wall = 0.0
    made = 0
    while made < n_masks:
        chunk = [maker.make() for _ in range(min(CHUNK, n_masks - made))]
        best, best_wall = float("inf"), float("inf")
        for _ in range(repeats):
            start, start_wall = time.process_time(), time.perf_counter()
            encoded = [mask_utils.encode(m) for m in chunk]
            best = min(best, time.process_time() - start)
            best_wall = min(best_wall, time.perf_counter() - start_wall)
        floor += best
        floor_wall += best_wall
        rles.extend({"size": [int(r["size"][0]), int(r["size"][1])], "counts": r["counts"].decode("ascii")}
                    for r in encoded)
        made += len(chunk)
    n_images = (n_masks + MASKS_PER_IMAGE - 1) // MASKS_PER_IMAGE
    images = [ImageRecord(id=i + 1, file_name=f"images/{i + 1:06d}.jpg", width=maker.width,
                          height=maker.height) for i in range(n_images)]
    labels = [LabelRecord(id=i + 1, name=f"class{i + 1}", color=(i * 3 % 256, 80, 160)) for i in range(20)]
    annotations = [AnnotationRecord(id=k + 1, image_id=k // MASKS_PER_IMAGE + 1, label_id=k % 20 + 1, rle=rle,
                                    order=k % MASKS_PER_IMAGE) for k, rle in enumerate(rles)]
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        dataset = Dataset(images=images, labels=labels, annotations=annotations, root=tmp)
        out = Path(tmp) / "instances.json"
        export_s, export_wall = _best_of(repeats, lambda: export_coco(dataset, out))
        written = json.loads(out.read_bytes())
        n_poly = sum(isinstance(a["segmentation"], list) for a in written["annotations"])
        size_mb = out.stat().st_size / 1e6
        export_rle_s, _ = _best_of(repeats, lambda: export_coco(dataset, Path(tmp) / "rle.json", rle=True))
    return {
        "masks": n_masks,
        "export_s": round(export_s, 6),
        "rle_floor_s": round(floor, 6),
        "ratio": round(export_s / floor, 3) if floor > 0 else None,
        "export_rle_s": round(export_rle_s, 6),
        "export_wall_s": round(export_wall, 6),
        "rle_floor_wall_s": round(floor_wall, 6),
        "ratio_wall": round(export_wall / floor_wall, 3) if floor_wall > 0 else None,
        "polygon_segmentations": n_poly,
        "rle_segmentations": len(written["annotations"]) - n_poly,
        "json_mb": round(size_mb, 2),
        "image_size": [maker.height, maker.width],
        "mask_source": "synthetic" if maker.synthetic else "shared/data ground truth (transformed)",
        "timing": f"best of {repeats} runs each; *_s and ratio are process CPU seconds (robust on a shared "
                  "machine), *_wall_s wall-clock",
        "target_ratio": 3.0,
    }


def _best_of(repeats: int, fn: Callable[[], object]) -> tuple[float, float]:
    """(best CPU seconds, best wall seconds) of `repeats` calls."""
    best, best_wall = float("inf"), float("inf")
    for _ in range(repeats):
        start, start_wall = time.process_time(), time.perf_counter()
        fn()
        best = min(best, time.process_time() - start)
        best_wall = min(best_wall, time.perf_counter() - start_wall)
    return best, best_wall


def _handler(args: argparse.Namespace) -> int:
    result = run(args.masks, seed=args.seed, repeats=args.repeats)
    rows = [("masks", result["masks"]), ("export_s (COCO, auto polygons)", result["export_s"]),
            ("export_rle_s (COCO, --rle)", result["export_rle_s"]),
            ("rle_floor_s (pycocotools encode)", result["rle_floor_s"]),
            ("ratio export/floor (target <= 3)", result["ratio"]),
            ("wall-clock export / floor / ratio",
             f"{result['export_wall_s']} / {result['rle_floor_wall_s']} / {result['ratio_wall']}"),
            ("polygons / RLE", f"{result['polygon_segmentations']} / {result['rle_segmentations']}"),
            ("mask source", result["mask_source"])]
    width = max(len(r[0]) for r in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    if args.json:
        atomic.write_json(args.json, result, indent=2)
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def register(bench_subparsers: argparse._SubParsersAction) -> None:
    parser = bench_subparsers.add_parser("export", help="COCO export speed against bare RLE encoding")
    parser.add_argument("--masks", type=int, default=10000, help="number of masks (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for the masks")
    parser.add_argument("--repeats", type=int, default=3, help="time each side this many times, keep the best")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the figures as JSON")
    parser.set_defaults(func=_handler)
