"""Shared test configuration: paths to `../shared`, SEEM fixture discovery, Qt offscreen."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
DATA = SHARED / "data"


def seem_fixture_dirs() -> list[Path]:
    """Every fixture folder (config.yaml + state_dict.pt + inputs.pt + outputs.pt) under
    `$SEEM_ANNOTATOR_FIXTURES` or `../shared/seem/fixtures`."""
    root = Path(os.environ.get("SEEM_ANNOTATOR_FIXTURES") or SHARED / "seem" / "fixtures")
    if not root.is_dir():
        return []
    needed = ("config.yaml", "state_dict.pt", "inputs.pt", "outputs.pt")
    return sorted(p for p in root.iterdir() if p.is_dir() and all((p / n).is_file() for n in needed))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Any test taking `seem_fixture_dir` runs once per fixture folder; the id is the folder name.
    if "seem_fixture_dir" in metafunc.fixturenames:
        dirs = seem_fixture_dirs()
        metafunc.parametrize("seem_fixture_dir", dirs, ids=[d.name for d in dirs])


def copy_samples(dest: Path) -> Path:
    """The bundled sample photos copied to `dest`, without the project store that `make app`
    leaves in resources/samples."""
    shutil.copytree(REPO_ROOT / "resources" / "samples", dest, ignore=shutil.ignore_patterns(".seem-annotator"))
    return dest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA}")
    return DATA
