"""`seem-annotator bench latency`: what a labeller waits for, per interaction, with random weights.

Measured on one image at `--size` short side (a bundled sample photo), warm-up excluded; the
three per-round measurements are interleaved so they see the same machine load:

- encode_ms: backbone + pixel decoder + the decoder's cached keys/values (once per image);
- click_ms: one interactive round as the app runs it: rasterise the session's clicks, the reduced
  decoder pass (no object queries, cached keys/values) with the previous round's memory, the mask
  at full resolution and label proposals. The previous answer's memory stream (the 32 spatial
  memories' path through the decoder, which depends on that answer only) was computed right after
  that answer, as the worker does while the labeller moves to the next click;
- memory_update_ms: that memory stream, computed after each answer (CPU work per round is
  click_ms + memory_update_ms; a click that arrives before it is done waits for the rest);
- cold_click_ms: a round whose memory stream was not prepared (a mask restored from the project,
  or a click faster than the update): the stream is computed inside the round;
- first_click_ms: the same for an object's first click (no memory yet);
- photo_click_ms: click_ms's round on a camera-sized photo (`--photo` short side, same model
  input): the mask comes back at the photo's full resolution and is RLE-encoded, as the app does
  before storing it;
- full_decoder_ms: our own full decoder pass as the official code runs one round: all object
  queries plus the spatial queries, keys/values recomputed;
- text_click_ms: one round answering a typed phrase (token embeddings cached per phrase);
- speedup = full_decoder_ms.p50 / click_ms.p50; cold_speedup = full_decoder_ms.p50 / cold_click_ms.p50.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from seem_annotator.errors import UserError


def _stats(samples: list[float]) -> dict[str, float]:
    return {"p50": float(np.percentile(samples, 50)), "p95": float(np.percentile(samples, 95))}


def _timed(fns: dict[str, Callable[[], object]], repeat: int, warmup: int,
           sync: Callable[[], None]) -> dict[str, list[float]]:
    """Milliseconds per call of each function, the functions interleaved round-robin so that all
    of them see the same machine load (ratios stay fair on a busy machine)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync()
    out: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync()
            out[name].append((time.perf_counter() - t0) * 1e3)
    return out


def _photo(size: int) -> np.ndarray:
    """A bundled sample photo scaled to `size` short side (RGB uint8)."""
    import cv2
    from PIL import Image

    from seem_annotator.paths import resource

    with Image.open(resource("samples", "coffee.jpg")) as im:
        rgb = np.asarray(im.convert("RGB"))
    h, w = rgb.shape[:2]
    f = size / min(h, w)
    return cv2.resize(rgb, (round(w * f), round(h * f)), interpolation=cv2.INTER_AREA)


def measure(config: str, size: int, device: str, repeat: int, warmup: int, seed: int = 0,
            photo: int = 3000, decode_threads: int | None = 1) -> dict:
    """Run the measurements; returns the JSON-ready result."""
    import torch

    from seem_annotator.core import masks
    from seem_annotator.core.prompts import PointPrompt, TextPrompt
    from seem_annotator.engine.backends import resolve_device
    from seem_annotator.engine.predictor import SeemPredictor
    from seem_annotator.engine.rasterize import rasterize
    from seem_annotator.engine.types import DecodeRequest, ImageInput
    from seem_annotator.model.config import load_config
    from seem_annotator.model.sampler import TorchSampler
    from seem_annotator.model.seem import build_seem

    device = resolve_device(device)
    torch.manual_seed(seed)
    torch.set_grad_enabled(False)
    with torch.device(device):
        model = build_seem(load_config(config)).eval()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    pred = SeemPredictor(model, name=f"seem:{config}", short_side=size, cache_bytes=0, decode_threads=decode_threads)
    pixels = _photo(size)
    h, w = pixels.shape[:2]
    counter = iter(range(10**9))

    def fresh_image() -> ImageInput:  # a new key each time: no feature cache hit
        return ImageInput(key=f"bench-{next(counter)}", pixels=pixels, full_size=(h, w))

    # An encode costs seconds on a CPU: at most 5 timed (the p95 of 5 is their maximum).
    encode = _timed({"encode": lambda: pred._encoded(fresh_image())}, min(repeat, 5), min(warmup, 1),
                    sync)["encode"]

    pred.cache.budget = 1 << 40
    image = ImageInput(key="bench", pixels=pixels, full_size=(h, w))
    pred.encode(image)
    clicks = [PointPrompt(w * 0.5, h * 0.5), PointPrompt(w * 0.2, h * 0.3, False), PointPrompt(w * 0.6, h * 0.6)]
    first = pred.predict(DecodeRequest(image, "o", 0, tuple(clicks[:1]), seed=seed))
    request = DecodeRequest(image, "o", 1, tuple(clicks), memory=first.memory, labels=("cup", "table", "spoon"),
                            seed=seed)
    first_request = DecodeRequest(image, "o", 0, tuple(clicks[:1]), labels=("cup", "table", "spoon"), seed=seed)

    feats_nokv = pred.model.features_from(*_pixel_decoder_outputs(pred, image), cache_kv=False)
    pm = rasterize(clicks, feats_nokv.image_hw, 1.0)
    pos, neg = pred._pad(pm.positive, feats_nokv), pred._pad(pm.negative, feats_nokv)
    prev = first.memory.logits

    def full_pass() -> object:
        # Same thread setting as the click round: only the amount of work differs.
        with pred.threads():
            return model.decode_spatial(feats_nokv, pos, neg, prev, TorchSampler(seed), object_queries=True)

    text_request = DecodeRequest(image, "t", 0, (TextPrompt("the coffee cup"),), labels=("cup",), seed=seed)
    # The same image as a camera photo: same key and model input (cached features, same memory).
    k = photo / min(h, w)
    photo_image = ImageInput(key="bench", pixels=pixels, full_size=(round(h * k), round(w * k)))
    photo_clicks = tuple(PointPrompt(c.x * k, c.y * k, c.positive) for c in clicks)
    photo_request = replace(request, image=photo_image, prompts=photo_clicks)

    def photo_click() -> object:
        cand = pred.predict(photo_request)
        return masks.encode(cand.mask)

    def memory_update() -> float:
        pred._streams.clear()
        return pred.prepare_next(first)

    def cold_click() -> object:
        pred._streams.clear()
        return pred.predict(request)

    # Order matters: each click round finds the stream the memory update just computed.
    rounds = _timed({"memory": memory_update, "click": lambda: pred.predict(request), "photo": photo_click,
                     "cold": cold_click,
                     "full": full_pass, "first": lambda: pred.predict(first_request),
                     "text": lambda: pred.predict(text_request)},
                    repeat, warmup, sync)
    click, full, text = rounds["click"], rounds["full"], rounds["text"]
    result = {
        "config": config, "size": [h, w], "device": device, "repeat": repeat, "warmup": warmup,
        "threads": torch.get_num_threads(), "decode_threads": pred.decode_threads,
        "encode_ms": _stats(encode), "click_ms": _stats(click), "memory_update_ms": _stats(rounds["memory"]),
        "cold_click_ms": _stats(rounds["cold"]), "first_click_ms": _stats(rounds["first"]),
        "full_decoder_ms": _stats(full), "text_click_ms": _stats(text),
        "photo_size": list(photo_image.full_size), "photo_click_ms": _stats(rounds["photo"]),
        "memory_coverage": float((prev > 0).float().mean()),
    }
    result["speedup"] = result["full_decoder_ms"]["p50"] / result["click_ms"]["p50"]
    result["cold_speedup"] = result["full_decoder_ms"]["p50"] / result["cold_click_ms"]["p50"]
    return result


def _pixel_decoder_outputs(pred, image) -> tuple:
    """(mask_features, multi_scale_features, padded_hw, image_hw) of the cached features."""
    f = pred._encoded(image).features
    return f.mask_features, f.multi_scale_features, f.padded_hw, f.image_hw


def run(args: argparse.Namespace) -> int:
    if args.size < 32:
        raise UserError("--size must be at least 32 pixels")
    if args.photo < args.size:
        raise UserError("--photo must be at least --size")
    res = measure(args.config, args.size, args.device, args.repeat, args.warmup, photo=args.photo,
                  decode_threads=args.decode_threads or None)
    print(f"SEEM {res['config']} at {res['size'][0]}x{res['size'][1]} on {res['device']} "
          f"({res['threads']} threads; decoder rounds {res['decode_threads'] or res['threads']}), "
          "random weights, ms:")
    print(f"{'stage':<18}{'p50':>10}{'p95':>10}")
    for key in ("encode_ms", "click_ms", "memory_update_ms", "cold_click_ms", "first_click_ms", "full_decoder_ms",
                "text_click_ms", "photo_click_ms"):
        print(f"{key[:-3]:<18}{res[key]['p50']:>10.1f}{res[key]['p95']:>10.1f}")
    print(f"speedup (full decoder / click round): {res['speedup']:.1f}x; without the prepared memory stream "
          f"{res['cold_speedup']:.1f}x (previous mask covers {100 * res['memory_coverage']:.0f}% of the image)")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1), encoding="utf-8")
    return 0


def register(bench_subparsers: argparse._SubParsersAction) -> None:
    p = bench_subparsers.add_parser("latency", help="per-click latency of the interactive engine (random weights)")
    p.add_argument("--config", default="focalt_v1", help="model name or config YAML (random weights)")
    p.add_argument("--size", type=int, default=512, help="input short side")
    p.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--photo", type=int, default=3000, help="short side of the camera photo for photo_click_ms")
    p.add_argument("--decode-threads", type=int, default=1,
                   help="CPU threads for decoder rounds (the app's default 1; 0 = torch's own setting)")
    p.add_argument("--json", required=True, help="output JSON file")
    p.set_defaults(func=run)
