"""Shared test configuration: paths to `../shared`, SEEM fixture discovery (`$SEEM_ANNOTATOR_FIXTURES`),
the fixture tests' device (`$SEEM_ANNOTATOR_TEST_DEVICE`), Qt offscreen."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
DATA = SHARED / "data"


FIXTURE_FILES = ("config.yaml", "state_dict.pt", "inputs.pt", "outputs.pt")


def _is_fixture(folder: Path) -> bool:
    return folder.is_dir() and all((folder / n).is_file() for n in FIXTURE_FILES)


def fixture_roots() -> list[Path]:
    """The places named by `$SEEM_ANNOTATOR_FIXTURES` (os.pathsep-separated), else the shared ones."""
    value = os.environ.get("SEEM_ANNOTATOR_FIXTURES", "")
    return [Path(p) for p in value.split(os.pathsep) if p] or [SHARED / "seem" / "fixtures"]


def seem_fixture_dirs() -> list[Path]:
    """Every fixture folder (config.yaml + state_dict.pt + inputs.pt + outputs.pt) named by
    `$SEEM_ANNOTATOR_FIXTURES` (each entry a fixture folder or a folder of them) or under
    `../shared/seem/fixtures`."""
    found: list[Path] = []
    for root in fixture_roots():
        if _is_fixture(root):
            found.append(root)
        elif root.is_dir():
            found.extend(sorted(p for p in root.iterdir() if _is_fixture(p)))
    return found


def _fixture_ids(dirs: list[Path]) -> list[str]:
    # The folder name, unless two chosen folders share it.
    names = [d.name for d in dirs]
    return [n if names.count(n) == 1 else f"{d.parent.name}/{n}" for d, n in zip(dirs, names)]


def fixture_device_name() -> str:
    """`$SEEM_ANNOTATOR_TEST_DEVICE` (cpu or cuda; default cpu): where the fixture tests run."""
    name = os.environ.get("SEEM_ANNOTATOR_TEST_DEVICE", "cpu").strip().lower() or "cpu"
    if name not in ("cpu", "cuda"):
        raise pytest.UsageError(f"SEEM_ANNOTATOR_TEST_DEVICE must be cpu or cuda, not {name!r}")
    return name


@pytest.fixture(scope="session")
def fixture_device() -> Iterator[torch.device]:
    """The fixture tests' device, in full float32: on CUDA, TF32 matmuls/convolutions would round
    far above the 1e-4 tolerance, so they are switched off for the session."""
    import torch  # here, not at module level: most test modules never need torch

    name = fixture_device_name()
    if name == "cpu":
        yield torch.device("cpu")
        return
    if not torch.cuda.is_available():
        pytest.skip("SEEM_ANNOTATOR_TEST_DEVICE=cuda but torch sees no CUDA device")
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield torch.device("cuda")
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def recorded(container: Mapping[str, Any], key: str, where: str) -> Any:
    """``container[key]``, or a skip naming the entry when the fixture did not record it (e.g. a
    v0 model has no second interactive object and no memory draws)."""
    if key not in container:
        pytest.skip(f"{where}: entry {key!r} not recorded by this fixture")
    return container[key]


def pytest_configure(config: pytest.Config) -> None:
    fixture_device_name()  # a bad $SEEM_ANNOTATOR_TEST_DEVICE stops the run with one message


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Any test taking `seem_fixture_dir` runs once per fixture folder; the id is the folder name.
    if "seem_fixture_dir" in metafunc.fixturenames:
        dirs = seem_fixture_dirs()
        metafunc.parametrize("seem_fixture_dir", dirs, ids=_fixture_ids(dirs))


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


@pytest.fixture
def fake_seem_download(tmp_path: Path, monkeypatch) -> list[str]:
    """A SEEM download that needs no network: an empty cache under tmp_path, and `hub.download`
    writing a few bytes where the checkpoint goes (no real weights). The names asked for, in order."""
    from seem_annotator.model import hub

    monkeypatch.setenv("SEEM_ANNOTATOR_CACHE", str(tmp_path / "cache"))
    fetched: list[str] = []

    def download(name: str, force: bool = False, progress: bool = True, watch=None) -> Path:
        fetched.append(name)
        target = hub.checkpoint_path(hub.resolve_model_name(name))
        target.write_bytes(b"not really weights")
        return target

    monkeypatch.setattr(hub, "download", download)
    return fetched
