"""`seem-annotator models ...`: list, download, check and describe SEEM checkpoints.

- ``models list``: the released models and whether each is in the cache.
- ``models download NAME``: fetch a released checkpoint into the cache (progress bar).
- ``models check CHECKPOINT [--config CONFIG]``: verify every key and shape against a config (or find
  the config that fits), without allocating the model.
- ``models manifest CONFIG --json OUT``: keys, shapes and dtypes of the model a config builds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from seem_annotator.errors import CheckpointError


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser("models", help="list, download and check SEEM checkpoints")
    sub = models.add_subparsers(dest="models_command", metavar="ACTION")

    p = sub.add_parser("list", help="known SEEM models and whether they are downloaded")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("download", help="download a released SEEM checkpoint into the cache")
    p.add_argument("name", help="model name, e.g. focalt_v1 (see 'models list')")
    p.add_argument("--force", action="store_true", help="download again even if cached")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("check", help="verify a checkpoint's keys and shapes against a config")
    p.add_argument("checkpoint", help="checkpoint file, or a known model name for its cached file")
    p.add_argument("--config", help="config name or YAML path (default: the one that fits)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("manifest", help="write the keys/shapes/dtypes of the model a config builds")
    p.add_argument("config", help="config name (e.g. focalt_v1) or YAML path")
    p.add_argument("--json", dest="json_out", required=True, help="output JSON file ('-' for stdout)")
    p.set_defaults(func=cmd_manifest)

    models.set_defaults(func=lambda args: (models.print_help(sys.stderr), 2)[1])


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n else "-"


def cmd_list(args: argparse.Namespace) -> int:
    from seem_annotator.model.hub import checkpoint_dir, list_models

    rows = list_models()
    header = ("name", "backbone", "ver", "cached", "size", "description")
    table = [(r.info.name, r.info.backbone, r.info.version, "yes" if r.cached else "no", _size(r.size_bytes),
              r.info.description) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *table)]
    for line in (header, *table):
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip())
    print(f"\ncache: {checkpoint_dir()}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from seem_annotator.model.hub import download

    path = download(args.name, force=args.force, progress=not args.quiet)
    print(f"{args.name}: {path}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from seem_annotator.model.checkpoint import check_state_dict, fitting_configs, read_state_dict
    from seem_annotator.model.config import config_name, load_config, resolve_model_name
    from seem_annotator.model.hub import resolve_checkpoint
    from seem_annotator.model.manifest import build_meta_model

    path = resolve_checkpoint(args.checkpoint)
    state, notes = read_state_dict(path, mmap=True)
    config = args.config
    if config is None:
        known = resolve_model_name(path.name)
        if known is not None:
            config = known.name
        else:
            exact, closest = fitting_configs(state)
            if not exact:
                hint = f" (closest {closest})" if closest else ""
                raise CheckpointError(f"Checkpoint {path.name} fits no known config{hint}; pass its config with "
                                      "--config CONFIG.")
            config = exact[0]
            notes.append(f"config chosen by key/shape signature: {' / '.join(exact)}")
    cfg = load_config(config)
    label = f"config {config_name(cfg)}" if Path(str(config)).suffix == "" else f"config {config}"
    model = build_meta_model(cfg)
    state, more = check_state_dict(model, state, source=f"Checkpoint {path.name}", config_label=label)
    n_params = sum(v.numel() for v in state.values())
    print(f"OK: {path} matches {label} ({len(state)} tensors, {n_params:,} numbers).")
    for note in notes + more:
        print(f"  note: {note}")
    return 0


def cmd_manifest(args: argparse.Namespace) -> int:
    from seem_annotator.model.config import load_config
    from seem_annotator.model.manifest import full_manifest

    cfg = load_config(args.config)
    manifest = full_manifest(cfg, source=str(args.config))
    text = json.dumps(manifest, indent=1)
    if args.json_out == "-":
        print(text)
    else:
        out = Path(args.json_out)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise CheckpointError(f"Cannot write manifest to {out}: {exc.strerror or exc}.") from exc
        print(f"{args.config}: {manifest['num_state_dict_keys']} keys, "
              f"{manifest['total_parameters']:,} parameters -> {out}")
    return 0
