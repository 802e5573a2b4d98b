"""`seem-annotator import video|frames` and `seem-annotator propagate`: sequences from the command line.

    seem-annotator import video FILE --project DIR [--every K | --fps F] [--format jpg|png] [--quality Q]
    seem-annotator import frames DIR --project DIR [--fps F]
    seem-annotator propagate --project DIR --sequence NAME [--track ID | --all] [--forward] [--backward]
                             [--min-confidence C] [--backend classical|seem:focalt_v1] [--device D]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from seem_annotator.errors import UserError


def _warn(message: str) -> None:
    print(f"seem-annotator: warning: {message}", file=sys.stderr)


def _open_project(project_dir: Path) -> Any:
    """The project at `project_dir`, created over that folder when it has none yet."""
    from seem_annotator.core.project import Project, default_store_path

    if project_dir.is_file() or default_store_path(project_dir).is_file():
        return Project.open(project_dir)
    if project_dir.exists() and not project_dir.is_dir():
        raise UserError(f"--project {project_dir} is not a folder")
    project_dir.mkdir(parents=True, exist_ok=True)
    return Project.create(project_dir)


def _import_video(args: argparse.Namespace) -> int:
    from seem_annotator.video.importing import import_video

    with _open_project(Path(args.project)) as project:
        record, decoded = import_video(project, Path(args.source), name=args.name, every=args.every or 1,
                                       fps=args.fps, fmt=args.format, quality=args.quality)
    if decoded.truncated:
        _warn(f"{args.source}: {decoded.error}; kept the {record.frame_count} frames decoded before that "
              f"(sequence '{record.name}' is marked truncated)")
    print(f"imported video {args.source} as sequence '{record.name}': {record.frame_count} frames in "
          f"{record.folder}")
    return 0


def _import_frames(args: argparse.Namespace) -> int:
    from seem_annotator.video.importing import import_frames

    with _open_project(Path(args.project)) as project:
        record = import_frames(project, Path(args.source), name=args.name, fps=args.fps)
    print(f"imported {record.frame_count} frames from {args.source} as sequence '{record.name}'")
    return 0


def add_import_parsers(imp_sub: argparse._SubParsersAction) -> None:
    """`import video` and `import frames`, next to the annotation importers."""
    video = imp_sub.add_parser("video", help="decode a video into frames as one sequence",
                               description="Decode a video once into image files inside the project, "
                                           "recorded as one sequence (frame index and timestamp).")
    video.add_argument("source", metavar="FILE", help="video file (anything FFmpeg reads)")
    video.add_argument("--project", required=True, metavar="DIR",
                       help="project folder (created when it has no project yet)")
    step = video.add_mutually_exclusive_group()
    step.add_argument("--every", type=int, metavar="K", help="keep every K-th frame")
    step.add_argument("--fps", type=float, metavar="F", help="keep about F frames per second")
    video.add_argument("--format", choices=("jpg", "png"), default="jpg", help="frame file format")
    video.add_argument("--quality", type=int, default=95, metavar="Q", help="JPEG quality 0-100 (default 95)")
    video.add_argument("--name", help="sequence name (default: the video's file name)")
    video.set_defaults(func=_import_video)

    frames = imp_sub.add_parser("frames", help="a folder of frames (sorted naturally) as one sequence",
                                description="A folder of frame images as one sequence, ordered naturally "
                                            "(frame2 before frame10); copied into the project when outside it.")
    frames.add_argument("source", metavar="DIR", help="folder of frame images")
    frames.add_argument("--project", required=True, metavar="DIR",
                        help="project folder (created when it has no project yet)")
    frames.add_argument("--fps", type=float, metavar="F", help="frame rate, for timestamps")
    frames.add_argument("--name", help="sequence name (default: the folder's name)")
    frames.set_defaults(func=_import_frames)


def _propagate(args: argparse.Namespace) -> int:
    from seem_annotator.core.project import Project
    from seem_annotator.engine.backends import create_backend
    from seem_annotator.video.propagate import PropagationSettings, Propagator

    forward = args.forward or not args.backward
    backward = args.backward
    with Project.open(Path(args.project)) as project:
        sequence = project.sequences.by_name(args.sequence)
        tracks = project.tracks.of_sequence(sequence.id)
        if args.track is not None:
            tracks = [t for t in tracks if t.id == args.track]
            if not tracks:
                raise UserError(f"Sequence '{sequence.name}' has no track {args.track}.")
        if not tracks:
            raise UserError(f"Sequence '{sequence.name}' has no tracks yet; make a keyframe on one of its frames first.")
        backend = create_backend(args.backend, args.device)
        settings = PropagationSettings(min_confidence=args.min_confidence, forward=forward, backward=backward)
        propagator = Propagator(project, backend, settings)

        def progress(done: int, total: int) -> None:
            print(f"\rpropagating: {done}/{total} frames", end="", file=sys.stderr, flush=True)

        job = propagator.start([t.id for t in tracks], progress=progress)
        try:
            report = job.result()
        except KeyboardInterrupt:
            job.cancel()
            report = job.result()
        print(file=sys.stderr)
    for line in report.lines():
        print(line)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("propagate", help="propagate a sequence's tracks from their keyframes")
    p.add_argument("--project", required=True, metavar="DIR", help="project folder (or store file)")
    p.add_argument("--sequence", required=True, metavar="NAME", help="sequence name")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--track", type=int, metavar="ID", help="only this track")
    which.add_argument("--all", action="store_true", help="every track of the sequence (the default)")
    p.add_argument("--forward", action="store_true", help="propagate forward (the default)")
    p.add_argument("--backward", action="store_true", help="propagate backward (with --forward: both ways)")
    p.add_argument("--min-confidence", type=float, default=0.5, metavar="C",
                   help="stop a track at a frame whose confidence falls below C and flag it (default 0.5)")
    p.add_argument("--backend", default="classical", help="classical or a SEEM model (seem:focalt_v1)")
    p.add_argument("--device", default="auto", help="cpu, cuda, mps or auto")
    p.set_defaults(func=_propagate)
