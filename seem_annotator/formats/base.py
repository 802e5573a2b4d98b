"""The plugin interface: exporters, importers and (later) segmentation backends.

A plugin is any Python module (a file in the repository's `plugins/` folder or the user plugins
folder, or an installed package's entry point in the group `seem_annotator.plugins`) that exposes

    def register(registry: PluginRegistry) -> None

and calls `registry.add_exporter(...)`, `registry.add_importer(...)` or `registry.add_backend(...)`.
An entry point may also point straight at an `Exporter`/`Importer` subclass or instance.
The built-in COCO and LabelMe formats register through the very same calls.

Exporters take a `Dataset` (pure data: images, labels, annotations with RLE masks, `root` = where
image files live) and write files atomically (see `formats.atomic`); importers return a fully
validated `Dataset` and raise `FormatError` for anything malformed, so a project imports all or
nothing.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from seem_annotator.core.records import Dataset

T = TypeVar("T")

# progress(iterable, total, description) -> the same items; the CLI passes a tqdm bar on stderr.
Progress = Callable[[Iterable[T], "int | None", str], Iterable[T]]


def no_progress(items: Iterable[T], total: int | None = None, desc: str = "") -> Iterator[T]:
    """A `Progress` that shows nothing."""
    yield from items


@dataclass
class ExportResult:
    """What an export wrote (`files`) and anything the user should know (`warnings`)."""

    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


class Exporter(ABC):
    """Writes a Dataset in one format.

    `name` is the CLI format (`seem-annotator export NAME --project DIR --out PATH`); `output` says
    whether PATH is a "file" or a "dir". `add_arguments` may add format options; `export` receives
    them as `options` (argparse destination -> value; missing keys mean defaults).
    """

    name: str = ""
    description: str = ""
    output: str = "dir"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add this format's own command-line options (default: none)."""
        return None

    @abstractmethod
    def export(self, dataset: Dataset, out: Path, options: dict[str, Any],
               progress: Progress = no_progress) -> ExportResult:
        """Write `dataset` to `out`; raise a `UserError` (nothing written) on failure."""


class Importer(ABC):
    """Reads one format into a Dataset.

    `name` is the CLI format (`seem-annotator import NAME SOURCE --project DIR`). The returned
    Dataset must be complete and consistent (ids unique, masks sized to their images, `root` set to
    the folder image `file_name`s are relative to); anything wrong raises `FormatError` first.
    """

    name: str = ""
    description: str = ""
    source: str = "file"  # what it reads: "file" or "dir" (which chooser the app offers)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add this format's own command-line options (default: none)."""
        return None

    @abstractmethod
    def read(self, source: Path, options: dict[str, Any], progress: Progress = no_progress) -> Dataset:
        """Parse `source` into a validated Dataset or raise `FormatError`."""


@dataclass
class BackendEntry:
    """A segmentation backend offered by a plugin: `factory(**kwargs)` returns an object following
    `seem_annotator.engine.types.SegmentationBackend`."""

    name: str
    factory: Callable[..., Any]
    description: str = ""
    source: str = ""
