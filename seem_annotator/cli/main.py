"""`seem-annotator` command line: one dispatcher, one module per command group.

Each command module exposes `register(subparsers)`, adding its parser(s) and setting
`func=handler` where `handler(args) -> int`. Errors a user can cause are `UserError`s: printed as
one line on stderr, exit status 2, no traceback unless `--debug` is given (anywhere on the line).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from seem_annotator import __version__
from seem_annotator.errors import UserError

COMMAND_MODULES = (
    "seem_annotator.cli.project_commands",  # import, export, info
    "seem_annotator.cli.annotate_commands",  # init, annotate
    "seem_annotator.cli.models_commands",  # models list/download/check/manifest
    "seem_annotator.cli.video_commands",  # propagate
    "seem_annotator.cli.bench_commands",  # bench export/model/interactive/latency
    "seem_annotator.cli.voice_commands",  # voice parse/transcribe
    "seem_annotator.cli.gui_command",  # gui
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seem-annotator",
        description="Label image datasets with SEEM: interactive masks with labels, COCO/LabelMe export.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        if debug:
            raise
        print(f"seem-annotator: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seem-annotator: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line, but say so
        if debug:
            raise
        print(f"seem-annotator: internal error: {type(exc).__name__}: {exc} (run with --debug for details)",
              file=sys.stderr)
        return 1
