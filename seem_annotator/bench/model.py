"""`seem-annotator bench model`: speed of the SEEM model stages with random weights.

Times, after warm-up runs that are not counted:

* ``image_encode``: backbone + pixel decoder (+ the decoder's per-image input preparation) on one
  ``size`` x ``size`` image -- what the app pays once per image;
* ``decoder_round_full``: one interactive round (a click, task 'spatial') with the object queries
  decoded too, as the official code always does -- comparable to its "one interactive decoder round";
* ``decoder_round``: the same round without object queries (same answer; what the app runs);
* ``decoder_round_memory``: a second round carrying the previous mask as memory;
* ``decoder_generic``: one segment-everything pass (object queries only);
* ``text_encode``: token embeddings of one phrase.

Each row gives median and 95th percentile wall seconds and the median process CPU seconds (all
threads; on a busy machine CPU seconds / threads estimates the quiet-machine wall time). Official reference on a 2-core CPU (official code,
Focal-T v1, float32, 512x512): backbone + pixel decoder 1.13 s, one interactive decoder round
0.58 s, text encoding of one phrase 0.05 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from seem_annotator.errors import DeviceError, UserError

OFFICIAL_2CORE_S = {"image_encode": 1.13, "decoder_round_full": 0.58, "text_encode": 0.05}
PHRASE = "the red car on the left"


def register(bench_subparsers: argparse._SubParsersAction) -> None:
    p = bench_subparsers.add_parser("model", help="time SEEM image encoding, decoding and text encoding")
    p.add_argument("--config", default="focalt_v1", help="config name or YAML path (default focalt_v1)")
    p.add_argument("--size", type=int, default=512, help="square input side in pixels (default 512)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default cpu)")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                   help="autocast dtype on GPU (default float32: no autocast)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per stage (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs per stage first (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", dest="json_out", help="write the results here")
    p.set_defaults(func=cmd_model)


def pick_device(name: str) -> torch.device:
    """A torch device from a user string, or DeviceError when it is not available."""
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise DeviceError(f"Unknown device '{name}'; use cpu, cuda or mps.") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError("CUDA was requested but no CUDA device is available; use --device cpu.")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError("MPS was requested but is not available on this machine; use --device cpu.")
    return device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_stage(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int) -> dict[str, Any]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times; median/p95/min seconds."""
    for _ in range(warmup):
        fn()
    _sync(device)
    runs, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        _sync(device)
        runs.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    ordered = sorted(runs)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * (len(ordered) - 1))))]
    # Process CPU seconds (all threads) say how much work a stage is even on a busy machine, where
    # wall time mostly measures waiting for a core.
    return {"median_s": statistics.median(runs), "p95_s": p95, "min_s": ordered[0], "runs_s": runs,
            "cpu_median_s": statistics.median(cpu)}


def run_benchmark(config: str, size: int = 512, device: str = "cpu", dtype: str = "float32",
                  threads: int | None = None, repeats: int = 10, warmup: int = 2, seed: int = 0) -> dict[str, Any]:
    """Build SEEM with random weights and time its stages. Returns the JSON-ready result."""
    if size < 32 or repeats < 1 or warmup < 0:
        raise UserError("--size must be at least 32, --repeats at least 1 and --warmup not negative.")
    dev = pick_device(device)
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _run(config, size, dev, dtype, repeats, warmup, seed)
    finally:
        torch.set_num_threads(previous_threads)


def _run(config: str, size: int, dev: torch.device, dtype: str, repeats: int, warmup: int, seed: int
         ) -> dict[str, Any]:
    from seem_annotator.model.config import config_name, load_config
    from seem_annotator.model.sampler import TorchSampler
    from seem_annotator.model.seem import build_seem

    cfg = load_config(config)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    with torch.device(dev):
        model = build_seem(cfg)
    model.eval()
    build_s = time.perf_counter() - t0
    if dtype != "float32":
        if dev.type == "cpu":
            raise DeviceError("--dtype float16/bfloat16 is for GPUs; CPU runs use float32.")
        model.autocast_dtype = getattr(torch, dtype)
    lang = model.language
    n_classes = int(model.num_classes) + 1
    lang.set_text_embeddings(torch.nn.functional.normalize(torch.randn(n_classes, lang.dim_proj, device=dev), dim=-1))

    gen = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=gen).to(dev)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None

    with torch.no_grad():
        x, hw = model.preprocess(image)
        feats = model.encode_image(x, hw)
        click = torch.zeros(1, size, size, dtype=torch.bool)
        click[0, size // 2 - 1: size // 2 + 2, size // 2 - 1: size // 2 + 2] = True  # a 3x3 click
        pos = model.pad_masks(click, feats)
        neg = torch.zeros_like(pos)
        first = model.decode_spatial(feats, pos, neg, sampler=TorchSampler(seed), object_queries=False)
        stages: dict[str, Callable[[], Any]] = {
            "image_encode": lambda: model.encode_image(x, hw),
            "decoder_round_full": lambda: model.decode_spatial(feats, pos, neg, sampler=TorchSampler(seed)),
            "decoder_round": lambda: model.decode_spatial(feats, pos, neg, sampler=TorchSampler(seed),
                                                          object_queries=False),
            "decoder_round_memory": lambda: model.decode_spatial(feats, pos, neg, prev_mask=first.mask_logits,
                                                                 sampler=TorchSampler(seed), object_queries=False),
            "decoder_generic": lambda: model.decode_generic(feats),
            "text_encode": lambda: lang.get_text_token_embeddings([PHRASE]),
        }
        results = {name: time_stage(fn, dev, repeats, warmup) for name, fn in stages.items()}

    return {
        "benchmark": "model",
        "config": str(config),
        "model": config_name(cfg),
        "size": size,
        "padded_size": list(feats.padded_hw),
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "dtype": dtype,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_before": list(load_before) if load_before else None,
        "load_average_after": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "weights": f"random (seed {seed})",
        "build_s": build_s,
        "repeats": repeats,
        "warmup": warmup,
        "stages": results,
        "official_2core_cpu_s": OFFICIAL_2CORE_S,
    }


def format_table(result: dict[str, Any]) -> str:
    lines = [
        f"SEEM {result['model']} ({result['config']}), {result['size']}x{result['size']} "
        f"(padded {result['padded_size'][0]}x{result['padded_size'][1]}), {result['device']} {result['dtype']}, "
        f"{result['threads']} threads, random weights; {result['repeats']} runs after {result['warmup']} warm-up",
        f"{'stage':<22}{'median s':>10}{'p95 s':>10}{'CPU s':>9}{'official 2-core s':>19}",
    ]
    for name, r in result["stages"].items():
        ref = result["official_2core_cpu_s"].get(name)
        lines.append(f"{name:<22}{r['median_s']:>10.3f}{r['p95_s']:>10.3f}{r['cpu_median_s']:>9.3f}"
                     f"{(f'{ref:.2f}' if ref else '-'):>19}")
    if result.get("load_average_before"):
        lines.append("load average before/after: "
                     f"{result['load_average_before'][0]:.2f} / {result['load_average_after'][0]:.2f}")
    return "\n".join(lines)


def cmd_model(args: argparse.Namespace) -> int:
    result = run_benchmark(args.config, size=args.size, device=args.device, dtype=args.dtype, threads=args.threads,
                           repeats=args.repeats, warmup=args.warmup, seed=args.seed)
    print(format_table(result))
    if args.json_out:
        out = Path(args.json_out)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        except OSError as exc:
            raise UserError(f"Cannot write {out}: {exc.strerror or exc}.") from exc
        print(f"wrote {out}")
    return 0
