"""Where the project's data lives: bundled resources and the per-user cache."""

from __future__ import annotations

import os
import sys
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def resources_dir() -> Path:
    """The `resources/` folder: beside the package in a source checkout or editable install,
    else the copy installed under `<prefix>/share/seem-annotator/resources`."""
    candidates = [
        _PACKAGE_DIR.parent / "resources",
        Path(sys.prefix) / "share" / "seem-annotator" / "resources",
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        "seem-annotator resources folder not found; looked in: " + ", ".join(map(str, candidates))
    )


def resource(*parts: str) -> Path:
    """Path of a bundled resource file, e.g. `resource("clip", "bpe_simple_vocab_16e6.txt.gz")`."""
    return resources_dir().joinpath(*parts)


def cache_dir() -> Path:
    """Per-user cache (checkpoints, model downloads): `$SEEM_ANNOTATOR_CACHE` or
    `$XDG_CACHE_HOME/seem-annotator` (default `~/.cache/seem-annotator`). Created on demand."""
    env = os.environ.get("SEEM_ANNOTATOR_CACHE")
    if env:
        path = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(base) / "seem-annotator"
    path.mkdir(parents=True, exist_ok=True)
    return path


def repo_shared_dir() -> Path:
    """`../shared` beside the repository root (tests and benchmarks read real data there)."""
    return _PACKAGE_DIR.parent.parent / "shared"
