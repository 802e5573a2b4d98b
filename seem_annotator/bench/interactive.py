"""`seem-annotator bench interactive`: the standard click-simulation benchmark (NoC@85/90).

Protocol: the first click goes to the interior-most pixel of the object (maximum of the distance
transform of the ground truth, the image border counting as boundary); every next click goes to the
interior-most pixel of the larger error region (by area): positive when the missed object is larger,
negative when the false background is larger; a pixel already clicked is never clicked again. IoU is
measured at the image's own resolution, ground-truth pixels valued exactly 128 are an ignore band
(never clicked, excluded from IoU). Every sample gets `--max-clicks` clicks (20); NoC@t is the first
click count reaching IoU >= t (max clicks when never).

`--first-prompt box` starts with the ground truth's bounding box instead of a click (then clicks);
`box-centre` starts with a click at the box centre, which is what the official SEEM code makes of
a box, for comparison.

`--backend classical,grabcut-plain` runs several backends interleaved on the same samples (each
sample by each backend in turn); `grabcut-plain` is the textbook GrabCut clicker
(bench/grabcut_plain.py), the reference every run can report the classical backend against;
`classical-opencv` is the classical backend cutting with cv2.grabCut instead of its own GrabCut.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from seem_annotator.core import masks as rle_masks
from seem_annotator.core.prompts import BoxPrompt, PointPrompt, Prompt
from seem_annotator.engine.types import DecodeRequest, ImageInput, SegmentationBackend
from seem_annotator.errors import FormatError, ImageReadError, UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
FIRST_PROMPTS = ("click", "box", "box-centre")


@dataclass
class Sample:
    """One object: image, ground truth (bool), ignore band (bool)."""

    name: str
    image: ImageInput
    gt: np.ndarray
    ignore: np.ndarray


# -- datasets ------------------------------------------------------------------------------------

def _read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise ImageReadError(f"cannot read image {path}: {exc}") from exc


def _image_input(path: Path, cache: dict[Path, ImageInput]) -> ImageInput:
    if path not in cache:
        pixels = _read_rgb(path)
        key = hashlib.sha256(path.read_bytes()).hexdigest()
        cache.clear()  # samples of one image are consecutive; keep memory flat
        cache[path] = ImageInput(key=key, pixels=pixels, full_size=pixels.shape[:2])
    return cache[path]


def _folder_samples(images_dir: Path, masks_dir: Path) -> Iterator[Sample]:
    images = {p.stem: p for p in sorted(images_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    mask_paths = sorted(p for p in masks_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not mask_paths:
        raise FormatError(f"no mask files in {masks_dir}")
    cache: dict[Path, ImageInput] = {}
    for mask_path in mask_paths:
        image_path = images.get(mask_path.stem)
        if image_path is None:
            raise FormatError(f"mask {mask_path.name} has no image with the same name in {images_dir}")
        image = _image_input(image_path, cache)
        try:
            with Image.open(mask_path) as im:
                raw = np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
        except (OSError, ValueError) as exc:
            raise ImageReadError(f"cannot read mask {mask_path}: {exc}") from exc
        channel = raw[..., 0] if raw.ndim == 3 else raw
        if channel.shape != image.full_size:
            raise FormatError(f"mask {mask_path.name} is {channel.shape[::-1]} but its image is "
                              f"{image.full_size[::-1]}")
        yield Sample(mask_path.stem, image, channel > 128, channel == 128)


def _coco_samples(ann_file: Path, images_root: Path) -> Iterator[Sample]:
    try:
        data = json.loads(ann_file.read_text(encoding="utf-8"))
        images = {img["id"]: img for img in data["images"]}
        anns = [a for a in data["annotations"] if not a.get("iscrowd", 0)]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FormatError(f"{ann_file} is not a readable COCO annotations file: {exc}") from exc
    cache: dict[Path, ImageInput] = {}
    for ann in sorted(anns, key=lambda a: (a["image_id"], a["id"])):
        info = images.get(ann["image_id"])
        if info is None:
            raise FormatError(f"annotation {ann['id']} points at missing image {ann['image_id']}")
        image = _image_input(images_root / info["file_name"], cache)
        h, w = image.full_size
        seg = ann["segmentation"]
        if isinstance(seg, list):  # polygons
            from pycocotools import mask as mask_utils
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
            gt = mask_utils.decode(rle).astype(bool)
        else:
            gt = rle_masks.decode(seg)
        if gt.shape != (h, w):
            raise FormatError(f"annotation {ann['id']} mask is {gt.shape} but its image is {(h, w)}")
        if gt.any():
            yield Sample(f"{Path(info['file_name']).stem}#{ann['id']}", image, gt, np.zeros_like(gt))


def load_samples(dataset: Path, images: Path | None = None) -> Iterator[Sample]:
    """Samples of a mask folder (images/ + masks/ or img/ + gt/) or a COCO annotations file."""
    if dataset.is_file():
        return _coco_samples(dataset, images or dataset.parent)
    for img_name, mask_name in (("images", "masks"), ("img", "gt")):
        if (dataset / img_name).is_dir() and (dataset / mask_name).is_dir():
            return _folder_samples(dataset / img_name, dataset / mask_name)
    raise UserError(f"{dataset} is neither a COCO annotations file nor a folder with images/ + masks/ "
                    "or img/ + gt/")


# -- the protocol --------------------------------------------------------------------------------

def interior_point(region: np.ndarray) -> tuple[int, int] | None:
    """(x, y) of the pixel of `region` farthest from its boundary (image border counts), or None."""
    if not region.any():
        return None
    padded = np.pad(region.astype(np.uint8), 1)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(x), int(y)


def next_click(gt: np.ndarray, pred: np.ndarray, ignore: np.ndarray,
               clicked: np.ndarray) -> tuple[int, int, bool] | None:
    """The simulated user's next click (x, y, positive) or None when nothing is left to fix."""
    valid = ~ignore & ~clicked
    fn = gt & ~pred & valid
    fp = ~gt & pred & valid
    positive = int(fn.sum()) > int(fp.sum())
    point = interior_point(fn if positive else fp)
    if point is None:
        return None
    return point[0], point[1], positive


def masked_iou(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray) -> float:
    valid = ~ignore
    inter = np.count_nonzero(pred & gt & valid)
    union = np.count_nonzero((pred | gt) & valid)
    return 1.0 if union == 0 else inter / union


def _bbox_prompt(gt: np.ndarray) -> BoxPrompt:
    ys, xs = np.nonzero(gt)
    return BoxPrompt(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def run_sample(backend: SegmentationBackend, sample: Sample, max_clicks: int, first_prompt: str,
               click_ms: list[float], encode_ms: list[float]) -> list[float]:
    """IoU after each of `max_clicks` interactions (the first may be a box)."""
    t0 = time.perf_counter()
    backend.encode(sample.image)
    encode_ms.append((time.perf_counter() - t0) * 1e3)
    h, w = sample.gt.shape
    pred = np.zeros((h, w), bool)
    clicked = np.zeros((h, w), bool)
    prompts: list[Prompt] = []
    memory = None
    ious: list[float] = []
    for k in range(max_clicks):
        if k == 0 and first_prompt != "click":
            box = _bbox_prompt(sample.gt)
            if first_prompt == "box":
                prompts.append(box)
            else:
                cx, cy = int((box.x0 + box.x1) / 2), int((box.y0 + box.y1) / 2)
                clicked[cy, cx] = True
                prompts.append(PointPrompt(cx + 0.5, cy + 0.5, True))
        else:
            click = next_click(sample.gt, pred, sample.ignore, clicked)
            if click is None:  # nothing left to fix (perfect, or only clicked pixels wrong)
                ious.append(ious[-1] if ious else masked_iou(pred, sample.gt, sample.ignore))
                continue
            x, y, positive = click
            clicked[y, x] = True
            prompts.append(PointPrompt(x + 0.5, y + 0.5, positive))
        request = DecodeRequest(image=sample.image, object_id=sample.name, round_index=k,
                                prompts=tuple(prompts), memory=memory,
                                previous_mask=pred if memory is None and k else None)
        t0 = time.perf_counter()
        cand = backend.predict(request)
        click_ms.append((time.perf_counter() - t0) * 1e3)
        pred, memory = cand.mask, cand.memory
        ious.append(masked_iou(pred, sample.gt, sample.ignore))
    return ious


def select_samples(samples: Iterator[Sample], half: str, limit: int, skip: int = 0) -> Iterator[Sample]:
    """The samples in dataset order, only the even-numbered (0, 2, ...) or odd-numbered ones when
    `half` is "even" or "odd" (a development half and a held-out half), the first `skip` of those
    left out (what a development run used), then the first `limit` of the rest (0: all)."""
    kept = (s for i, s in enumerate(samples) if half == "all" or i % 2 == (half == "odd"))
    rest = (s for i, s in enumerate(kept) if i >= skip)
    return (s for i, s in enumerate(rest) if not limit or i < limit)


def noc(ious: list[float], threshold: float, max_clicks: int) -> int:
    for k, value in enumerate(ious, 1):
        if value >= threshold:
            return k
    return max_clicks


def summarize(all_ious: list[list[float]], click_ms: list[float], encode_ms: list[float],
              max_clicks: int) -> dict:
    arr = np.asarray(all_ious, np.float64)
    return {
        "samples": len(all_ious),
        "noc85": float(np.mean([noc(r, 0.85, max_clicks) for r in all_ious])),
        "noc90": float(np.mean([noc(r, 0.90, max_clicks) for r in all_ious])),
        "fail90": int(sum(1 for r in all_ious if max(r) < 0.90)),
        "miou_at": {str(k + 1): float(arr[:, k].mean()) for k in range(arr.shape[1])},
        "click_ms": {"p50": float(np.percentile(click_ms, 50)), "p95": float(np.percentile(click_ms, 95))},
        "encode_ms": {"p50": float(np.percentile(encode_ms, 50))},
    }


def evaluate(backend: SegmentationBackend, samples: list[Sample] | Iterator[Sample], max_clicks: int = 20,
             first_prompt: str = "click", progress: bool = False) -> dict:
    """Run the protocol over the samples; the summary dict written as JSON."""
    return evaluate_many({backend.name: backend}, samples, max_clicks, first_prompt, progress)[backend.name]


def evaluate_many(backends: dict[str, SegmentationBackend], samples: list[Sample] | Iterator[Sample],
                  max_clicks: int = 20, first_prompt: str = "click", progress: bool = False) -> dict[str, dict]:
    """The protocol for several backends interleaved (each sample by every backend in turn, so
    they share the samples and the machine's load): backend name -> summary dict."""
    all_ious: dict[str, list[list[float]]] = {n: [] for n in backends}
    click_ms: dict[str, list[float]] = {n: [] for n in backends}
    encode_ms: dict[str, list[float]] = {n: [] for n in backends}
    for i, sample in enumerate(samples):
        for name, backend in backends.items():
            ious = run_sample(backend, sample, max_clicks, first_prompt, click_ms[name], encode_ms[name])
            all_ious[name].append(ious)
            if progress:
                print(f"  [{i + 1}] {sample.name} {name}: IoU@1 {ious[0]:.3f}  "
                      f"IoU@5 {ious[min(4, len(ious) - 1)]:.3f}  NoC90 {noc(ious, 0.9, max_clicks)}", flush=True)
    results = {}
    for name in backends:
        if not all_ious[name]:
            raise UserError("the dataset has no samples")
        result = summarize(all_ious[name], click_ms[name], encode_ms[name], max_clicks)
        result["per_sample"] = [[round(v, 4) for v in r] for r in all_ious[name]]
        results[name] = result
    return results


# -- command line ----------------------------------------------------------------------------------

def _plot(results: dict[str, dict], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, res in results.items():
        ks = sorted(int(k) for k in res["miou_at"])
        ax.plot(ks, [res["miou_at"][str(k)] for k in ks], marker="o", ms=3,
                label=f"{name} (NoC@90 {res['noc90']:.2f})")
    ax.set_xlabel("clicks")
    ax.set_ylabel("mean IoU")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def _table(results: dict[str, dict]) -> str:
    lines = [f"{'backend':<28}{'samples':>8}{'NoC85':>8}{'NoC90':>8}{'fail90':>8}{'IoU@1':>8}{'IoU@5':>8}"
             f"{'click p50':>11}{'p95 ms':>9}{'encode':>9}"]
    for name, r in results.items():
        m = r["miou_at"]
        lines.append(f"{name:<28}{r['samples']:>8}{r['noc85']:>8.2f}{r['noc90']:>8.2f}{r['fail90']:>8}"
                     f"{m['1']:>8.3f}{m.get('5', float('nan')):>8.3f}{r['click_ms']['p50']:>11.1f}"
                     f"{r['click_ms']['p95']:>9.1f}{r['encode_ms']['p50']:>9.1f}")
    return "\n".join(lines)


# The classical backend with one of its additions switched off, to compare side by side.
CLASSICAL_VARIANTS = {
    "classical-opencv": {"solver": "opencv"},  # cv2.grabCut as its cut (before its own GrabCut)
    "classical-one-core": {"second_core": False},  # without the second-core helper (cut_helper.py)
    "classical-whole-outline": {"local_refine": False},  # the whole outline refined every round
}


def make_backend(name: str, device: str) -> SegmentationBackend:
    """A backend by name; `grabcut-plain` is the benchmark's own textbook reference, the names in
    CLASSICAL_VARIANTS the classical backend with one addition switched off."""
    if name == "grabcut-plain":
        from seem_annotator.bench.grabcut_plain import GrabCutPlainBackend

        return GrabCutPlainBackend()
    if name in CLASSICAL_VARIANTS:
        from seem_annotator.engine.classical_backend import ClassicalBackend

        backend = ClassicalBackend(**CLASSICAL_VARIANTS[name])
        backend.name = name
        return backend
    from seem_annotator.engine.backends import create_backend

    return create_backend(name, device)


def run(args: argparse.Namespace) -> int:
    if args.max_clicks < 1:
        raise UserError("--max-clicks must be at least 1")
    names = list(dict.fromkeys(n.strip() for n in args.backend.split(",") if n.strip()))
    if not names:
        raise UserError("--backend names no backend")
    dataset = Path(args.dataset)
    if not dataset.exists():
        raise UserError(f"dataset {dataset} does not exist")
    backends = {}
    for name in names:
        backend = make_backend(name, args.device)
        backends[backend.name] = backend
    samples = load_samples(dataset, Path(args.images) if args.images else None)
    if args.skip < 0 or args.limit < 0:
        raise UserError("--skip and --limit must be at least 0")
    samples = select_samples(samples, args.half, args.limit, args.skip)
    results = evaluate_many(backends, samples, args.max_clicks, args.first_prompt, progress=args.verbose)
    for name, res in results.items():
        res.update(backend=name, device=backends[name].device, dataset=str(dataset),
                   first_prompt=args.first_prompt, max_clicks=args.max_clicks)
        if hasattr(backends[name], "second_core"):
            res["second_core"] = backends[name].second_core  # a helper process cut beside the clicks
    print(_table(results))
    # One backend: its keys at the top level; several: `backends` maps each name to those keys.
    report = next(iter(results.values())) if len(results) == 1 else {"backends": results}
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    if args.plot:
        _plot(results, Path(args.plot), f"{dataset.name} ({args.first_prompt} first)")
    return 0


def register(bench_subparsers: argparse._SubParsersAction) -> None:
    p = bench_subparsers.add_parser("interactive", help="NoC@85/90 click simulation on a dataset")
    p.add_argument("--dataset", required=True,
                   help="folder with images/+masks/ (or img/+gt/), or a COCO annotations JSON file")
    p.add_argument("--images", help="images root for a COCO file (default: the file's folder)")
    p.add_argument("--backend", default="classical",
                   help="'classical', 'grabcut-plain' (the textbook GrabCut clicker, for reference), "
                        "'classical-opencv' (the classical backend cutting with cv2.grabCut), "
                        "'classical-one-core' (the classical backend without its second-core helper), "
                        "'classical-whole-outline' (refining the whole outline every round) or a SEEM "
                        "model name (e.g. focalt_v1); comma-separated to compare them on the same "
                        "samples, interleaved")
    p.add_argument("--device", default="auto", help="cpu, cuda, mps or auto")
    p.add_argument("--max-clicks", type=int, default=20)
    p.add_argument("--first-prompt", choices=FIRST_PROMPTS, default="click")
    p.add_argument("--half", choices=("all", "even", "odd"), default="all",
                   help="only the even- or odd-numbered samples (develop on one, hold out the other)")
    p.add_argument("--skip", type=int, default=0,
                   help="leave out the first N samples (of the half): a held-out part after a development part")
    p.add_argument("--limit", type=int, default=0, help="only the first N samples (of the half, after --skip)")
    p.add_argument("--json", required=True, help="output JSON file")
    p.add_argument("--plot", help="output PNG: mean IoU against clicks")
    p.add_argument("--verbose", action="store_true", help="print every sample")
    p.set_defaults(func=run)
