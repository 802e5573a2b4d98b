"""`seem-annotator init|annotate`: create a project headlessly; auto-annotate it with SEEM.

    seem-annotator init FOLDER [--store PATH] [--labels a,b,c]
    seem-annotator annotate --project DIR --model NAME [--checkpoint FILE] --mode everything[,text,exemplar]
        [--labels a,b,c] [--phrases P ...] [--threshold T] [--images GLOB] [--device cpu|cuda] [--json OUT]
        [--engine local|ray] [--address ADDR] [--workers N] [--gpus-per-worker G] [--ship-images] [--ship-model]

`annotate` creates or resumes the run of those settings (see `annotate.run`); its proposals wait
for review. The JSON has images (processed now), skipped (already done), failed, proposals
(added), seconds and images_per_s.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from seem_annotator.errors import UserError


def split_list(text: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(p.strip() for p in (text or "").split(",") if p.strip()))


def _init(args: argparse.Namespace) -> int:
    from seem_annotator.cli.project_commands import _CoreBar
    from seem_annotator.core.project import Project

    bar = _CoreBar("scanning images")
    try:
        project = Project.create(Path(args.folder), store_path=args.store, progress=bar)
    finally:
        bar.close()
    with project:
        for name in split_list(args.labels):
            project.ensure_label(name)
        info = project.info()
    print(f"created a project over {info['root']} ({info['images']} images, {len(info['labels'])} labels); "
          f"store {info['store']}")
    return 0


def _executor(args: argparse.Namespace, spec: object) -> object:
    from seem_annotator.annotate.executor import LocalExecutor, make_executor

    if args.engine == "local":
        # Built here, before the run is recorded: a checkpoint that does not match fails at once.
        return LocalExecutor(annotator=spec.build())  # type: ignore[attr-defined]
    options = {"address": args.address, "workers": args.workers, "gpus_per_worker": args.gpus_per_worker,
               "ship_images": args.ship_images, "ship_model": args.ship_model}
    return make_executor("ray", **options)


def _annotate(args: argparse.Namespace) -> int:
    from seem_annotator.annotate import run as runner
    from seem_annotator.annotate.settings import ExemplarSelection, RunSettings, parse_modes
    from seem_annotator.cli.project_commands import _CoreBar
    from seem_annotator.core.project import Project

    if args.engine == "ray":
        from seem_annotator.annotate.ray_executor import require_ray

        require_ray()  # before any model work: say how to install it
    modes = parse_modes(args.mode)
    labels = split_list(args.labels)
    settings = RunSettings(modes=modes, labels=labels, phrases=tuple(args.phrases or ()),
                           threshold=args.threshold, labels_only=args.labels_only,
                           exemplars=ExemplarSelection(labels=split_list(args.exemplar_labels)),
                           seed=args.seed)
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA device is available; use --device cpu.")
    with Project.open(Path(args.project)) as project:
        spec = runner.prepare_run(project, settings, args.model, args.checkpoint, device=args.device,
                                  threads=args.threads)
        images = runner.select_images(project, args.images)
        executor = _executor(args, spec)
        bar = _CoreBar("annotating")
        try:
            summary = runner.run(project, spec, executor, images, progress=bar)  # type: ignore[arg-type]
        finally:
            bar.close()
            executor.close()  # type: ignore[attr-defined]
        pending = project.info()["proposals"]
    report = summary.to_json()
    report["pending"] = pending
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
    for name, error in summary.errors.items():
        print(f"seem-annotator: warning: {name}: {error}", file=sys.stderr)
    verb = "resumed" if summary.resumed else "started"
    print(f"run {summary.run_id} ({verb}): {summary.images} images annotated ({summary.failed} failed), "
          f"{summary.skipped} already done, {summary.proposals} proposals added, {pending} waiting for review "
          f"({summary.images_per_s:.2f} images/s)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    init = subparsers.add_parser("init", help="create a project over a folder of images")
    init.add_argument("folder", metavar="FOLDER", help="the images folder")
    init.add_argument("--store", metavar="PATH", help="store file (default FOLDER/.seem-annotator/project.sqlite)")
    init.add_argument("--labels", metavar="a,b,c", help="labels to add")
    init.set_defaults(func=_init)

    ann = subparsers.add_parser("annotate", help="auto-annotate a project's images with SEEM (proposals to review)")
    ann.add_argument("--project", required=True, metavar="DIR", help="project folder (or store file)")
    ann.add_argument("--model", required=True, metavar="NAME", help="released model name or config YAML")
    ann.add_argument("--checkpoint", metavar="FILE", help="weights for --model (a state_dict .pt or checkpoint)")
    ann.add_argument("--mode", default="everything", metavar="MODES",
                     help="everything, text, exemplar or a comma list")
    ann.add_argument("--labels", metavar="a,b,c", help="label list (default: the project's labels)")
    ann.add_argument("--labels-only", action="store_true", help="everything: keep only segments of listed labels")
    ann.add_argument("--phrases", nargs="+", metavar="P", help="text mode: phrases to ground ('phrase=label')")
    ann.add_argument("--exemplar-labels", metavar="a,b,c",
                     help="exemplar mode: labels whose accepted annotations are exemplars (default: --labels)")
    ann.add_argument("--threshold", type=float, default=0.3, metavar="T", help="min score (text, exemplar)")
    ann.add_argument("--images", metavar="GLOB", help="only images whose file name matches")
    ann.add_argument("--device", default="cpu", help="cpu or cuda")
    ann.add_argument("--threads", type=int, metavar="N",
                     help="torch CPU threads of the model (local engine; a ray worker uses its CPUs); "
                          "masks are bit-identical across engines for the same count")
    ann.add_argument("--seed", type=int, default=0, help="base of the per-image seeds")
    ann.add_argument("--json", metavar="OUT", help="write the figures as JSON")
    ann.add_argument("--engine", choices=("local", "ray"), default="local")
    ann.add_argument("--address", metavar="ADDR", help="ray: auto, host:port or ray://host:port (default: local)")
    ann.add_argument("--workers", type=int, default=1, metavar="N", help="ray: workers (actors)")
    ann.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G", help="ray: GPUs per worker")
    ann.add_argument("--ship-images", action="store_true", help="ray: send image bytes from the driver")
    ann.add_argument("--ship-model", action="store_true", help="ray: send the weights through the object store")
    ann.set_defaults(func=_annotate)
