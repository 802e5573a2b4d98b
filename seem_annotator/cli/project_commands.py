"""`seem-annotator import|export|info|scan`: headless project commands over the same core as the app.

    seem-annotator import coco ANNOTATIONS.json --images DIR --project DIR
    seem-annotator import labelme DIR --project DIR
    seem-annotator import video FILE --project DIR  |  import frames DIR --project DIR   (cli.video_commands)
    seem-annotator export coco --project DIR --out FILE [--rle]
    seem-annotator export labelme --project DIR --out DIR
    seem-annotator export FORMAT --project DIR --out PATH      (plugin formats: yolo, png, ...)
        [--include-proposals]   (pending auto-annotation proposals too, marked as proposals)
    seem-annotator info --project DIR [--json]
    seem-annotator scan --project DIR [--json]

Formats come from the plugin registry (built-ins + `plugins/` + entry points); a broken plugin is
reported on stderr and skipped. Importers validate the whole file before anything is written and the
project adds the result in one transaction, so a failed import leaves the project as it was.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from seem_annotator.core.records import Dataset
from seem_annotator.errors import PluginError, UserError
from seem_annotator.formats.common import rebase_dataset, relative_posix
from seem_annotator.formats.registry import PluginRegistry, default_registry

T = TypeVar("T")


# -- progress ------------------------------------------------------------------------------------


def tqdm_progress(items: Iterable[T], total: int | None = None, desc: str = "") -> Iterator[T]:
    """A `formats.base.Progress` drawing a tqdm bar on stderr (hidden when stderr is not a terminal)."""
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=desc, unit="item", file=sys.stderr, disable=None, leave=False)


class _CoreBar:
    """The core's `progress(done, total)` callback as a tqdm bar on stderr."""

    def __init__(self, desc: str) -> None:
        self.desc, self.bar = desc, None

    def __call__(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.desc, file=sys.stderr, disable=None, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# -- helpers -------------------------------------------------------------------------------------


def _warn(message: str) -> None:
    print(f"seem-annotator: warning: {message}", file=sys.stderr)


def _report_plugin_problems(registry: PluginRegistry) -> None:
    for line in registry.problems():
        _warn(line)


def _project_for_import(project_dir: Path, dataset: Dataset) -> Any:
    """Open the project at `project_dir`, or create it: its images root is `project_dir` when the
    imported images lie inside it, else the imported images' folder (store kept in `project_dir`)."""
    from seem_annotator.core.project import Project, default_store_path

    if project_dir.is_file() or default_store_path(project_dir).is_file():
        return Project.open(project_dir)
    if project_dir.exists() and not project_dir.is_dir():
        raise UserError(f"--project {project_dir} is not a folder")
    project_dir.mkdir(parents=True, exist_ok=True)
    images_root = project_dir
    if dataset.root is not None:
        src = Path(os.path.abspath(dataset.root))
        if relative_posix(src, project_dir).startswith(".."):
            images_root = src
    bar = _CoreBar("scanning images")
    try:
        return Project.create(images_root, store_path=default_store_path(project_dir), progress=bar)
    finally:
        bar.close()


# -- handlers ------------------------------------------------------------------------------------


def _import(args: argparse.Namespace) -> int:
    registry = default_registry()
    _report_plugin_problems(registry)
    importer = registry.importer(args.format_name)
    source = Path(args.source)
    if not source.exists():
        raise UserError(f"{source} does not exist")
    dataset = importer.read(source, vars(args), tqdm_progress)
    for warning in dataset.extra.get("warnings", []):
        _warn(warning)
    project_dir = Path(args.project)
    with _project_for_import(project_dir, dataset) as project:
        rebased = rebase_dataset(dataset, project.root)
        bar = _CoreBar("importing")
        try:
            summary = project.import_dataset(rebased, progress=bar, source=source.name)
        finally:
            bar.close()
    print(f"imported {summary.get('annotations_added', 0)} annotations on {len(dataset.images)} images "
          f"({summary.get('images_added', 0)} new images, {summary.get('labels_added', 0)} new labels) "
          f"into {project_dir}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from seem_annotator.core.project import Project

    registry = default_registry()
    _report_plugin_problems(registry)
    exporter = registry.exporter(args.format_name)
    with Project.open(Path(args.project), read_only=True) as project:
        dataset = project.snapshot(include_proposals=args.include_proposals)
    result = exporter.export(dataset, Path(args.out), vars(args), tqdm_progress)
    for warning in result.warnings:
        _warn(warning)
    counts = ", ".join(f"{v} {k}" for k, v in result.counts.items())
    print(f"exported {args.format_name} to {args.out}" + (f" ({counts})" if counts else ""))
    return 0


def _info(args: argparse.Namespace) -> int:
    from seem_annotator.core.project import Project

    with Project.open(Path(args.project), read_only=True) as project:
        info = project.info()
    if args.json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return 0
    print(f"project      {args.project}")
    for key in ("root", "store", "images", "annotations", "in_progress", "done", "unreadable", "proposals"):
        if key in info:
            print(f"{key:<12} {info[key]}")
    labels = info.get("labels", {})
    print(f"labels       {len(labels)}")
    for name, count in sorted(labels.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {count:>7}  {name}")
    return 0


def _scan(args: argparse.Namespace) -> int:
    from seem_annotator.core.project import Project

    with Project.open(Path(args.project)) as project:
        summary = project.rescan()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(Project.describe_rescan(summary) or "No new or changed images.")
    return 0


def _undo_import(args: argparse.Namespace) -> int:
    from seem_annotator.core.project import Project
    from seem_annotator.core.transfer import describe_undone_import

    with Project.open(Path(args.project)) as project:
        record = project.last_import()
        if record is None:
            print("There is no import to undo (only the newest import can be undone, once).")
            return 1
        summary = project.undo_last_import()
    print(describe_undone_import(record.source, summary or {}))
    return 0


def _broken(message: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        raise PluginError(message)
    return handler


# -- registration --------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    registry = default_registry()

    imp = subparsers.add_parser("import", help="import COCO / LabelMe / plugin annotations into a project")
    imp_sub = imp.add_subparsers(dest="import_format", metavar="FORMAT")
    for name, importer in sorted(registry.importers.items()):
        parser = imp_sub.add_parser(name, help=importer.description, description=importer.description)
        parser.add_argument("source", metavar="SOURCE", help="annotation file or folder to import")
        parser.add_argument("--project", required=True, metavar="DIR",
                            help="project folder (created when it has no project yet)")
        parser.set_defaults(func=_import, format_name=name)
        try:
            importer.add_arguments(parser)
        except Exception as exc:  # a plugin's options must not break the whole command line
            parser.set_defaults(func=_broken(f"import format '{name}' is broken: {exc}"))
    from seem_annotator.cli.video_commands import add_import_parsers

    add_import_parsers(imp_sub)  # import video / import frames: sequences, not annotation formats

    exp = subparsers.add_parser("export", help="export a project as COCO / LabelMe / plugin formats")
    exp_sub = exp.add_subparsers(dest="export_format", metavar="FORMAT")
    for name, exporter in sorted(registry.exporters.items()):
        parser = exp_sub.add_parser(name, help=exporter.description, description=exporter.description)
        parser.add_argument("--project", required=True, metavar="DIR", help="project folder (or store file)")
        what = "FILE" if exporter.output == "file" else "DIR"
        parser.add_argument("--out", required=True, metavar=what, help=f"output {what.lower()}")
        parser.add_argument("--include-proposals", action="store_true",
                            help="also export auto-annotation proposals not reviewed yet (marked as proposals)")
        parser.set_defaults(func=_export, format_name=name)
        try:
            exporter.add_arguments(parser)
        except Exception as exc:
            parser.set_defaults(func=_broken(f"export format '{name}' is broken: {exc}"))

    info = subparsers.add_parser("info", help="counts of a project: images, annotations, labels, in progress")
    info.add_argument("--project", required=True, metavar="DIR", help="project folder (or store file)")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_info)

    undo = subparsers.add_parser("undo-import", help="take back the newest import: its annotations, new labels "
                                 "and placeholder images")
    undo.add_argument("--project", required=True, metavar="DIR", help="project folder (or store file)")
    undo.set_defaults(func=_undo_import)

    scan = subparsers.add_parser("scan", help="rescan a project's folder: new, changed, resized and missing images")
    scan.add_argument("--project", required=True, metavar="DIR", help="project folder (or store file)")
    scan.add_argument("--json", action="store_true", help="print the counts as JSON")
    scan.set_defaults(func=_scan)
