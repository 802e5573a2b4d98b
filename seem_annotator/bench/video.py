"""`seem-annotator bench video`: semi-supervised video object segmentation, the DAVIS protocol.

Each sequence folder holds `frames/*.jpg` and `masks/*.png` (0 = background, 1..K = objects). Every
object starts from its frame-0 ground truth and is propagated to the last frame with no further
help (`video.tracker.MaskTracker`, the same step the app runs); J (IoU) and F (DAVIS boundary
measure) are averaged over frames 1..n-1 and objects. In the same run, `baseline` chains the
optical-flow warp of the frame-0 mask alone (no backend), so the backend's share is visible.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from seem_annotator.core.sequences import natural_key
from seem_annotator.errors import UserError
from seem_annotator.video.frames import FrameCache
from seem_annotator.video.metrics import boundary_f, region_j
from seem_annotator.video.tracker import Anchor, MaskTracker


def sequence_dirs(dataset: Path) -> list[Path]:
    if (dataset / "frames").is_dir():
        return [dataset]
    found = sorted(p for p in dataset.iterdir() if (p / "frames").is_dir() and (p / "masks").is_dir()) \
        if dataset.is_dir() else []
    if not found:
        raise UserError(f"{dataset} holds no sequence folders with frames/ and masks/.")
    return found


def _files(folder: Path, exts: tuple[str, ...]) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in exts), key=lambda p: natural_key(p.name))


def _summary(j: list[float], f: list[float], frames: int, seconds: float) -> dict[str, float]:
    mj = float(np.mean(j)) if j else 0.0
    mf = float(np.mean(f)) if f else 0.0
    return {"J": round(mj, 4), "F": round(mf, 4), "JF": round((mj + mf) / 2, 4), "frames": frames,
            "fps": round(frames / seconds, 2) if seconds > 0 else 0.0}


def evaluate_sequence(folder: Path, tracker: MaskTracker, max_frames: int | None = None) -> tuple[dict, dict]:
    """(backend result, flow baseline) for one sequence folder."""
    frames = _files(folder / "frames", (".jpg", ".jpeg", ".png"))[:max_frames]
    gts = {p.stem: np.asarray(Image.open(p)) for p in _files(folder / "masks", (".png",))}
    if len(frames) < 2 or frames[0].stem not in gts:
        raise UserError(f"{folder} needs at least two frames and a mask for the first one.")
    cache = FrameCache(capacity=4)
    first_gt = gts[frames[0].stem]
    objects = [int(k) for k in np.unique(first_gt) if k != 0]
    js, fs, bjs, bfs = [], [], [], []
    spent = base_spent = 0.0
    from seem_annotator.core import masks as rle

    for obj in objects:
        start = cache.get(frames[0].stem, frames[0])
        anchor = Anchor(0, rle.encode(first_gt == obj), start.image)
        mask = base = first_gt == obj
        prev = start
        for path in frames[1:]:
            cur = cache.get(path.stem, path)
            t0 = time.perf_counter()
            mask = tracker.step(prev, cur, mask, anchor, object_id=f"{folder.name}:{obj}").mask
            t1 = time.perf_counter()
            base = tracker.carry(prev, cur, base)
            t2 = time.perf_counter()
            spent += t1 - t0
            base_spent += t2 - t1
            gt = gts.get(path.stem)
            if gt is not None:
                gt = gt == obj
                js.append(region_j(mask, gt))
                fs.append(boundary_f(mask, gt))
                bjs.append(region_j(base, gt))
                bfs.append(boundary_f(base, gt))
            prev = cur
    steps = (len(frames) - 1) * max(1, len(objects))
    return _summary(js, fs, steps, spent), _summary(bjs, bfs, steps, base_spent)


def run_benchmark(dataset: Path, backend_name: str, device: str = "auto", max_frames: int | None = None,
                  backend: Any = None) -> dict[str, Any]:
    from seem_annotator.engine.backends import create_backend

    backend = backend or create_backend(backend_name, device)
    tracker = MaskTracker(backend)
    result: dict[str, Any] = {"backend": getattr(backend, "name", backend_name), "sequences": {},
                              "baseline": {"sequences": {}}}
    for folder in sequence_dirs(dataset):
        ours, base = evaluate_sequence(folder, tracker, max_frames)
        result["sequences"][folder.name] = ours
        result["baseline"]["sequences"][folder.name] = base
    for target in (result, result["baseline"]):
        rows = list(target["sequences"].values())
        target["mean"] = {k: round(float(np.mean([r[k] for r in rows])), 4) for k in ("J", "F", "JF")}
    return result


def random_seem(config: str, device: str, seed: int = 0) -> Any:
    """A SEEM predictor with random weights (meaningless masks, real timings)."""
    import torch

    from seem_annotator.engine.backends import resolve_device
    from seem_annotator.engine.predictor import SeemPredictor
    from seem_annotator.model.config import load_config
    from seem_annotator.model.seem import build_seem

    device = resolve_device(device)
    torch.manual_seed(seed)
    torch.set_grad_enabled(False)
    with torch.device(device):
        model = build_seem(load_config(config)).eval()
    return SeemPredictor(model, name=f"seem:{config}(random)")


def run(args: argparse.Namespace) -> int:
    backend = random_seem(args.random_weights, args.device) if args.random_weights else None
    result = run_benchmark(Path(args.dataset), args.backend, args.device, args.frames, backend=backend)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(f"{'sequence':<28}{'J':>7}{'F':>7}{'J&F':>7}{'fps':>8}   baseline J&F")
    for name, row in result["sequences"].items():
        base = result["baseline"]["sequences"][name]
        print(f"{name:<28}{row['J']:>7.3f}{row['F']:>7.3f}{row['JF']:>7.3f}{row['fps']:>8.1f}   {base['JF']:.3f}")
    m, b = result["mean"], result["baseline"]["mean"]
    print(f"{'mean':<28}{m['J']:>7.3f}{m['F']:>7.3f}{m['JF']:>7.3f}{'':>8}   {b['JF']:.3f}")
    print(f"wrote {args.json}")
    return 0


def register(bench_subparsers: argparse._SubParsersAction) -> None:
    p = bench_subparsers.add_parser("video", help="DAVIS-style propagation from the first-frame mask (J, F, J&F, fps)")
    p.add_argument("--dataset", default="../shared/data/video", help="folder of sequence folders (frames/, masks/)")
    p.add_argument("--backend", default="classical", help="classical or a SEEM model")
    p.add_argument("--device", default="auto", help="cpu, cuda, mps or auto")
    p.add_argument("--frames", type=int, default=None, help="only the first N frames of each sequence")
    p.add_argument("--random-weights", metavar="CONFIG", default=None,
                   help="instead of --backend: SEEM with random weights from a model name or config YAML "
                        "(timings only; masks are meaningless)")
    p.add_argument("--json", required=True, help="output JSON file")
    p.set_defaults(func=run)
