"""`seem-annotator gui [FOLDER]`: start the desktop app (also `python main.py [FOLDER]`)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gui", help="start the desktop app",
        description="Open a folder of images in the desktop app. The project store is created beside the "
                    "images (FOLDER/.seem-annotator/); for a read-only folder pass --store or the app keeps "
                    "it in your user cache.")
    parser.add_argument("folder", nargs="?", help="folder of images to open (default: the last project), or a "
                                                  "video: its frames go into a project folder of its name beside it")
    parser.add_argument("--store", help="project store file or folder, for read-only image folders")
    parser.add_argument("--backend", help="'classical' or a SEEM model such as seem:focalt_v1 "
                                          "(default: the last used, else the first downloaded SEEM model)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N, mps or auto (default: auto)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from seem_annotator.gui.app import run

    return run(args.folder, store=args.store, backend=args.backend, device=args.device)
