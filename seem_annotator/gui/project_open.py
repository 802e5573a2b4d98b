"""Opening a folder as a project: the store beside the images, or elsewhere for read-only folders;
and the recent-projects list kept in QSettings."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from PySide6.QtCore import QSettings

from seem_annotator.core.project import Project, default_store_path
from seem_annotator.errors import StoreError
from seem_annotator.paths import cache_dir

RECENT_KEY = "recent/projects"
RECENT_MAX = 10


def folder_writable(folder: Path) -> bool:
    """Whether a project store can be created inside `folder` (tested, not guessed from modes)."""
    target = folder / ".seem-annotator"
    if target.is_dir():
        return os.access(target, os.W_OK)
    return os.access(folder, os.W_OK | os.X_OK)


def fallback_store(folder: Path) -> Path:
    """Where a read-only folder's project lives when the user picks nothing: the user cache, one
    store per folder path."""
    digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    return cache_dir() / "projects" / f"{folder.name or 'root'}-{digest}" / "project.sqlite"


def open_project(folder: str | os.PathLike, store: str | os.PathLike | None = None) -> Project:
    """Open (or create) the project for `folder`.

    `store`: an explicit store file (for read-only image folders); a folder is taken to mean
    `<folder>/project.sqlite`. Without it the store goes beside the images when the folder is
    writable, else into the user cache. An existing store is always reopened, never recreated.
    """
    folder = Path(folder).expanduser().resolve()
    if folder.is_file() and folder.suffix == ".sqlite":
        return Project.open(folder)
    if not folder.is_dir():
        raise StoreError(f"{folder} is not a folder; choose a folder of images.")
    if store is not None:
        store_path = Path(store).expanduser()
        if store_path.is_dir() or not store_path.suffix:
            store_path = store_path / "project.sqlite"
    elif default_store_path(folder).is_file() or folder_writable(folder):
        return Project.open_or_create(folder)
    else:
        store_path = fallback_store(folder)
    if store_path.is_file():
        return Project.open(store_path)
    store_path.parent.mkdir(parents=True, exist_ok=True)
    return Project.create(folder, store_path)


def recent_projects(settings: QSettings) -> list[str]:
    value = settings.value(RECENT_KEY, [])
    if isinstance(value, str):
        value = [value]
    return [str(v) for v in (value or []) if v]


def remember_project(settings: QSettings, folder: str, store: str | None = None) -> None:
    """Put `folder` (with its store when not the default one) first in the recent list."""
    entry = folder if store is None else f"{folder}|{store}"
    items = [e for e in recent_projects(settings) if e.split("|")[0] != folder]
    settings.setValue(RECENT_KEY, [entry, *items][:RECENT_MAX])


def split_recent(entry: str) -> tuple[str, str | None]:
    folder, _, store = entry.partition("|")
    return folder, (store or None)
