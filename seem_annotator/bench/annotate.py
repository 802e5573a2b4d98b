"""`seem-annotator bench annotate`: how close a real auto-annotation run comes to a bare model loop.

The same images go through, in the same process, interleaved round by round:

* (a) a bare loop of model calls: encode + panoptic decode + label scoring (`ImageAnnotator.infer`)
  on images decoded and resized beforehand (not timed), nothing else;
* (b) a real run (`annotate.run.run`) into a fresh project (store in a temp folder; the images
  are not copied): reading, decoding and resizing, the model, masks to full resolution, RLE,
  suppression and one SQLite transaction per image, all timed.

`ratio` = run images/s over bare images/s over all rounds, `median_round_ratio` the median of the
rounds' own ratios (target >= 0.9: the run overlaps reading and writing with
the model). With `--engine ray --workers 1,2` it also times the Ray engine for each worker count
(fresh project each; actor start and model load included, Ray's own start not): `ray_images_per_s`,
`ray_overhead` (local run images/s over Ray with one worker) and `scaling` (two workers over one).
With a released model name and no `--checkpoint` the model is that config with random weights.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
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
    p.add_argument("--images", required=True, metavar="DIR", help="folder of images")
    p.add_argument("--limit", type=int, default=8, metavar="N", help="images used (default 8)")
    p.add_argument("--mode", default="everything", help="annotation modes (default everything)")
    p.add_argument("--labels", default=DEFAULT_LABELS, metavar="a,b,c", help="label list for label scoring")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
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
    return AnnotatorSpec(args.model, args.checkpoint, settings, device=args.device,
                         random_weights=random_weights, threads=args.threads)


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
    from seem_annotator.annotate.executor import LocalExecutor
    from seem_annotator.annotate.work import ImageTask

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is available; use --device cpu.")
    folder = Path(args.images).resolve()
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
        result.update(ray_figures(args, spec, folder, names, result["run_images_per_s"]))
    print(json.dumps(result, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


def ray_figures(args: argparse.Namespace, spec: Any, folder: Path, names: set[str], local_rate: float
                ) -> dict[str, Any]:
    """images/s of the Ray engine per worker count, its overhead over the local engine, scaling."""
    from seem_annotator.annotate.executor import make_executor

    try:
        counts = [int(w) for w in args.workers.split(",") if w.strip()]
    except ValueError as exc:
        raise UserError(f"--workers {args.workers!r} is not a comma list of numbers.") from exc
    rates: dict[str, float] = {}
    for workers in counts:
        executor = make_executor("ray", workers=workers)
        try:
            executor.connect()  # Ray's own start is not the engine's cost per run
            seconds, _ = timed_run(folder, spec, executor, names)
        finally:
            executor.close()
        rates[str(workers)] = round(len(names) / seconds, 4)
    out: dict[str, Any] = {"ray_images_per_s": rates}
    if "1" in rates:
        out["ray_overhead"] = round(local_rate / rates["1"], 4)
        if "2" in rates:
            out["scaling"] = round(rates["2"] / rates["1"], 4)
    return out
