"""`seem-annotator bench annotate`: how close a real auto-annotation run comes to a bare model loop.

The same images go through, in the same process, interleaved round by round:

* (a) a bare loop of model calls: encode + panoptic decode + label scoring (`ImageAnnotator.infer`)
  on images decoded and resized beforehand (not timed), nothing else;
* (b) a real run (`annotate.run.run`) into a fresh project (store in a temp folder; the images
  are not copied): reading, decoding and resizing, the model, masks to full resolution, RLE,
  suppression and one SQLite transaction per image, all timed.

`ratio` = run images/s over bare images/s over all rounds, `median_round_ratio` the median of the
rounds' own ratios (target >= 0.9: the run overlaps reading and writing with
the model). With `--engine ray --workers 1,2` it also compares, like for like (every model with
the same torch threads: `--threads`, default 1, and each Ray worker as many CPUs), the local
engine with the Ray engine per worker count, in each round (every other round in reverse order,
so that drift over a run weighs on every engine alike), every run into a fresh project:

* end-to-end (`ray_images_per_s`, `ray_overhead` = local / 1 worker, `scaling` = 2 / 1 workers):
  the whole run with its model loading (the local engine builds its model; each Ray actor starts
  its process, imports and loads the model); Ray's own start (`ray_start_s`) is apart;
* steady state (`ray_steady_images_per_s`, `ray_overhead_steady`, `scaling_steady`): the images
  that reached the driver after every worker had handed over its first results (`ready_s`), over
  the time from then to the last.

With a released model name and no `--checkpoint` the model is that config with random weights.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

from seem_annotator.errors import UserError

DEFAULT_LABELS = "person,car,dog,cat,chair,bottle,bird,horse"


def register(bench_subparsers: argparse._SubParsersAction) -> None:
    p = bench_subparsers.add_parser("annotate", help="auto-annotation run vs a bare model loop (images/s)")
    p.add_argument("--model", required=True, metavar="NAME", help="released model name or config YAML")
    p.add_argument("--checkpoint", metavar="FILE", help="weights (default: random weights of the config)")
    p.add_argument("--images", required=True, nargs="+", metavar="DIR",
                   help="folder(s) of images; several are taken in the order given (linked into one "
                        "temporary folder, not copied)")
    p.add_argument("--limit", type=int, default=8, metavar="N", help="images used, the first N (default 8)")
    p.add_argument("--mode", default="everything", help="annotation modes (default everything)")
    p.add_argument("--labels", default=DEFAULT_LABELS, metavar="a,b,c", help="label list for label scoring")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads per model (default: torch's choice; with --engine ray 1, "
                        "and each Ray worker gets as many CPUs)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved bare/run rounds (default 3)")
    p.add_argument("--engine", choices=("local", "ray"), default="local")
    p.add_argument("--workers", default="1,2", help="ray: worker counts to time (default 1,2)")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="write the results here")
    p.set_defaults(func=cmd_annotate)


def _images(folder: Path, limit: int) -> list[Path]:
    from seem_annotator.core.images import SUPPORTED_EXTENSIONS

    if not folder.is_dir():
        raise UserError(f"--images {folder} is not a folder.")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUPPORTED_EXTENSIONS)[:max(1, limit)]
    if not paths:
        raise UserError(f"--images {folder} holds no images.")
    return paths


def _one_folder(folders: list[Path], limit: int, scratch: Path) -> Path:
    """The folder the benchmark's projects are made over: the one given, or for several the first
    `limit` images of them in the order given, linked into `scratch` (names numbered so that they
    keep that order and cannot collide)."""
    if len(folders) == 1:
        return folders[0]
    paths: list[Path] = []
    for folder in folders:
        paths += _images(folder, limit - len(paths))
        if len(paths) >= limit:
            break
    for n, path in enumerate(paths):
        (scratch / f"{n:06d}_{path.name.replace(' ', '_')}").symlink_to(path.resolve())
    return scratch


def _spec(args: argparse.Namespace) -> Any:
    from seem_annotator.annotate.annotator import AnnotatorSpec, file_digest
    from seem_annotator.annotate.run import model_identity
    from seem_annotator.annotate.settings import RunSettings, parse_modes
    from seem_annotator.cli.annotate_commands import split_list

    random_weights = args.checkpoint is None
    settings = RunSettings(modes=parse_modes(args.mode), labels=split_list(args.labels),
                           model=model_identity(args.model),
                           checkpoint_sha256=None if random_weights else file_digest(args.checkpoint))
    settings.validate()
    if "exemplar" in settings.modes:
        raise UserError("bench annotate times the everything and text modes; drop exemplar from --mode.")
    threads = args.threads
    if threads is None and args.engine == "ray":
        threads = 1  # like for like: the local engine gets the torch threads of one Ray worker
    return AnnotatorSpec(args.model, args.checkpoint, settings, device=args.device,
                         random_weights=random_weights, threads=threads)


def bare_loop(annotator: Any, prepared: list[Any]) -> float:
    """Seconds for the model calls alone over already decoded images. They run on a thread of
    their own, as the run's model calls do: torch's intra-op threading differs between the main
    thread and others (on a loaded CPU the main thread's OpenMP team was measured 4-5x slower),
    and the comparison is of the pipeline, not of the thread."""
    seconds: list[float] = []
    failure: list[BaseException] = []

    def loop() -> None:
        try:
            _sync(annotator.spec.device)
            start = time.perf_counter()
            for item in prepared:
                annotator.infer(item)
            _sync(annotator.spec.device)
            seconds.append(time.perf_counter() - start)
        except BaseException as exc:  # noqa: BLE001 - raised on the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=loop, name="bench-bare-model")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return seconds[0]


def timed_run(folder: Path, spec: Any, executor: Any, names: set[str]) -> tuple[float, int]:
    """(wall seconds, proposals) of a real run into a fresh project over `folder`."""
    from seem_annotator.annotate import run as runner
    from seem_annotator.core.project import Project

    with tempfile.TemporaryDirectory(prefix="seem-bench-") as tmp:
        with Project.create(folder, store_path=Path(tmp) / "project.sqlite") as project:
            images = [i for i in project.images() if i.file_name in names]
            start = time.perf_counter()
            summary = runner.run(project, spec, executor, images)
            seconds = time.perf_counter() - start
    if summary.failed:
        raise UserError(f"{summary.failed} images could not be annotated: {next(iter(summary.errors.values()))}")
    return seconds, summary.proposals


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def cmd_annotate(args: argparse.Namespace) -> int:
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is available; use --device cpu.")
    with tempfile.TemporaryDirectory(prefix="seem-bench-images-") as scratch:
        folder = _one_folder([Path(f).resolve() for f in args.images], args.limit, Path(scratch))
        return _annotate(args, folder)


def _annotate(args: argparse.Namespace, folder: Path) -> int:
    from seem_annotator.annotate.executor import LocalExecutor
    from seem_annotator.annotate.work import ImageTask

    paths = _images(folder, args.limit)
    spec = _spec(args)
    annotator = spec.build()
    tasks = [ImageTask(i, p.name, str(p), spec.settings.image_seed(i)) for i, p in enumerate(paths, 1)]
    prepared = [annotator.prepare(t) for t in tasks]
    bad = [p for p in prepared if not hasattr(p, "pixels")]
    if bad:
        raise UserError(f"An image could not be read: {bad[0].error}")
    bare_loop(annotator, prepared[:1])  # warm-up (allocations, text embeddings), not timed
    local = LocalExecutor(annotator=annotator)
    names = {p.name for p in paths}
    bare_s = run_s = 0.0
    proposals = 0
    ratios = []
    for _ in range(max(1, args.rounds)):
        bare = bare_loop(annotator, prepared)
        seconds, proposals = timed_run(folder, spec, local, names)
        bare_s, run_s = bare_s + bare, run_s + seconds
        ratios.append(bare / seconds)
    n = len(paths) * max(1, args.rounds)
    result: dict[str, Any] = {
        "images": len(paths), "rounds": max(1, args.rounds), "model": args.model,
        "checkpoint": args.checkpoint or "random weights", "modes": list(spec.settings.modes),
        "device": args.device, "threads": torch.get_num_threads(), "proposals_per_run": proposals,
        "bare_images_per_s": round(n / bare_s, 4), "run_images_per_s": round(n / run_s, 4),
        "ratio": round(bare_s / run_s, 4), "round_ratios": [round(r, 4) for r in ratios],
        # On a shared machine the load changes between rounds; the median round is steadier.
        "median_round_ratio": round(statistics.median(ratios), 4), "machine": platform.platform(),
    }
    if args.engine == "ray":
        result.update(ray_figures(args, spec, folder, names))
    print(json.dumps(result, indent=2))
    if args.engine == "ray":
        print_ray_table(result)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


WAITED_S = 0.02  # a result the driver got without waiting this long was already there with the one before


class Stopwatch:
    """An executor wrapper that notes when each result reached the driver, and from which worker.
    Results handed over together (a Ray batch) share the time the first of them came."""

    def __init__(self, inner: Any, clock: Any = time.perf_counter) -> None:
        self.inner = inner
        self.name = inner.name
        self.clock = clock
        self.arrivals: list[tuple[float, str | None]] = []

    def map(self, spec: Any, tasks: Any) -> Any:
        results = iter(self.inner.map(spec, tasks))
        try:
            while True:
                asked = self.clock()
                try:
                    result = next(results)
                except StopIteration:
                    return
                now = self.clock()
                came = now if now - asked > WAITED_S or not self.arrivals else self.arrivals[-1][0]
                self.arrivals.append((came, result.worker))
                yield result
        finally:
            close = getattr(results, "close", None)
            if close is not None:
                close()

    def close(self) -> None:
        self.inner.close()


def steady_state(arrivals: list[tuple[float, str | None]], start: float) -> dict[str, float | None]:
    """From (arrival time, worker) of a run begun at `start`: `ready_s`, the seconds until every
    worker had handed over its first results (start-up: process, imports, model, first batch), and
    `steady_images_per_s`, the throughput while every worker was busy: between `ready` and the
    last results of the worker that finished first, each worker's images from its first handover
    in that window to its last, over that time, summed over the workers (windows bounded by a
    worker's own handovers hold whole batches). None when a worker has under two handovers there
    (the run is too short to say)."""
    if not arrivals:
        return {"ready_s": None, "steady_images_per_s": None}
    handovers: dict[str | None, dict[float, int]] = {}
    for came, worker in arrivals:
        mine = handovers.setdefault(worker, {})
        mine[came] = mine.get(came, 0) + 1
    ready = max(min(times) for times in handovers.values())
    done = min(max(times) for times in handovers.values())
    rate = 0.0
    for times in handovers.values():
        inside = sorted(t for t in times if ready <= t <= done)
        if len(inside) < 2:
            return {"ready_s": round(ready - start, 4), "steady_images_per_s": None}
        rate += sum(times[t] for t in inside[1:]) / (inside[-1] - inside[0])
    return {"ready_s": round(ready - start, 4), "steady_images_per_s": round(rate, 4)}


def timed_engine(folder: Path, spec: Any, executor: Any, names: set[str]) -> dict[str, Any]:
    """End-to-end and steady-state figures of one real run (fresh project) through `executor`."""
    watch = Stopwatch(executor)
    start = time.perf_counter()
    seconds, _ = timed_run(folder, spec, watch, names)
    figures = {"end_to_end_images_per_s": round(len(names) / seconds, 4), "seconds": round(seconds, 4)}
    figures.update(steady_state(watch.arrivals, start))
    return figures


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a and b else None


def engine_order(round_index: int, counts: list[int]) -> list[str | int]:
    """The engines of one round: the local engine, then Ray with each worker count; every other
    round in reverse, so that a machine slowing (or speeding up) over a run counts against each
    engine alike over an even number of rounds."""
    order: list[str | int] = ["local", *counts]
    return order if round_index % 2 == 0 else order[::-1]


def ray_figures(args: argparse.Namespace, spec: Any, folder: Path, names: set[str]) -> dict[str, Any]:
    """The local engine and the Ray engine per worker count, like for like: every run uses
    `spec.threads` torch threads per model (the local engine one model, each Ray worker one
    model on as many CPUs). End-to-end figures count the model's loading (locally: building it;
    on Ray: each actor's process start, imports and model load; Ray's own start is `ray_start_s`,
    apart); steady-state figures count the images after every worker's first results."""
    from seem_annotator.annotate.executor import LocalExecutor, make_executor
    from seem_annotator.annotate.ray_executor import require_ray

    try:
        counts = [int(w) for w in args.workers.split(",") if w.strip()]
    except ValueError as exc:
        raise UserError(f"--workers {args.workers!r} is not a comma list of numbers.") from exc
    require_ray()  # the driver's one-time imports are not a run's cost
    threads = int(spec.threads)
    # Other work on the machine changes every figure here, scaling most (processes of one
    # session share one scheduler group's CPU time under Linux autogroup): recorded with them.
    load_before = _load()
    local: list[dict[str, Any]] = []
    ray_runs: dict[str, list[dict[str, Any]]] = {str(w): [] for w in counts}
    for round_index in range(max(1, args.rounds)):  # interleaved: the machine's load changes over minutes
        for engine in engine_order(round_index, counts):
            if engine == "local":
                local.append(timed_engine(folder, spec, LocalExecutor(), names))  # builds its model inside the timing
                continue
            executor = make_executor("ray", workers=engine, cpus_per_worker=threads)
            try:
                begun = time.perf_counter()
                executor.connect()
                started = time.perf_counter() - begun
                figures = timed_engine(folder, spec, executor, names)
            finally:
                executor.close()
            figures["ray_start_s"] = round(started, 4)
            ray_runs[str(engine)].append(figures)
    out: dict[str, Any] = {"threads_per_worker": threads, "load_average": load_before,
                           "load_average_after": _load(), "local": _mean(local),
                           "ray": {w: _mean(runs) for w, runs in ray_runs.items()}}
    e2e = {w: f["end_to_end_images_per_s"] for w, f in out["ray"].items()}
    steady = {w: f["steady_images_per_s"] for w, f in out["ray"].items()}
    out["ray_images_per_s"] = e2e
    out["ray_steady_images_per_s"] = steady
    out["ray_overhead"] = _ratio(out["local"]["end_to_end_images_per_s"], e2e.get("1"))
    out["ray_overhead_steady"] = _ratio(out["local"]["steady_images_per_s"], steady.get("1"))
    out["scaling"] = _ratio(e2e.get("2"), e2e.get("1"))
    out["scaling_steady"] = _ratio(steady.get("2"), steady.get("1"))
    return out


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _mean(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-key mean of the rounds (rates: total images over total seconds would weigh slow rounds
    more; a plain mean keeps each round's figure as it was measured)."""
    keys = runs[0].keys()
    out: dict[str, Any] = {}
    for key in keys:
        values = [r[key] for r in runs if r[key] is not None]
        out[key] = round(statistics.mean(values), 4) if values else None
    out["rounds"] = len(runs)
    return out


def print_ray_table(figures: dict[str, Any]) -> None:
    """The like-for-like comparison as a few lines for people (the JSON has the same figures)."""
    rows = [("local", figures["local"])] + [(f"ray x{w}", f) for w, f in figures["ray"].items()]
    print(f"engine    end-to-end img/s  steady img/s  ready after s   ({figures['threads_per_worker']} torch "
          "thread(s) per model)", file=sys.stderr)
    def cell(value: float | None, width: int, digits: int) -> str:
        return f"{value:>{width}.{digits}f}" if value is not None else f"{'-':>{width}}"  # too short to say

    for name, f in rows:
        print(f"{name:<9} {cell(f['end_to_end_images_per_s'], 16, 3)}  {cell(f['steady_images_per_s'], 12, 3)}  "
              f"{cell(f['ready_s'], 13, 2)}", file=sys.stderr)
    print(f"load average before/after: {figures['load_average']} / {figures['load_average_after']} "
          f"on {os.cpu_count()} cores", file=sys.stderr)
    print(f"ray_overhead (local / 1 worker; target <= 1.15): end-to-end {figures['ray_overhead']}, steady "
          f"{figures['ray_overhead_steady']}; scaling (2 / 1 workers; target >= 1.6): end-to-end "
          f"{figures['scaling']}, steady {figures['scaling_steady']}", file=sys.stderr)
