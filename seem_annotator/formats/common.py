"""Helpers shared by the formats: safe path resolution, relative paths, oriented image sizes,
default label colours, reading JSON with clear errors."""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from seem_annotator.core import palette
from seem_annotator.core.records import RGB, Dataset, ImageRecord
from seem_annotator.errors import FormatError, UserError

_EXIF_ORIENTATION = 0x0112
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".jfif")


def read_json(path: Path, what: str) -> Any:
    """Parse a JSON file, turning every read or syntax problem into one clear `FormatError`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FormatError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    if not data.strip():
        raise FormatError(f"{what} {path} is empty")
    try:
        return json.loads(data)
    except UnicodeDecodeError as exc:
        raise FormatError(f"{what} {path} is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        hint = " (the file looks truncated)" if exc.pos >= len(data.rstrip()) - 1 else ""
        raise FormatError(f"{what} {path} is not valid JSON: {exc.msg.removesuffix(' at')} at line {exc.lineno} "
                          f"column {exc.colno}{hint}") from exc


def resolve_inside(root: Path, relative: str, what: str) -> tuple[Path, str]:
    """(absolute path, normalised POSIX path relative to `root`) of `relative`; FormatError when it is
    absolute or its `..` parts lead outside `root`. The check is lexical: a symlink the user placed
    inside the root is followed like any folder."""
    if not isinstance(relative, str) or not relative.strip():
        raise FormatError(f"{what} has an empty file name")
    text = relative.replace("\\", "/")
    candidate = PurePosixPath(text)
    if candidate.is_absolute() or PureWindowsPath(relative).drive:
        raise FormatError(f"{what} file name '{relative}' is an absolute path outside the images folder "
                          f"{root}; nothing was imported")
    root_abs = Path(os.path.abspath(root))
    full = Path(os.path.normpath(root_abs / candidate))
    try:
        inside = full.relative_to(root_abs)
    except ValueError:
        raise FormatError(f"{what} file name '{relative}' resolves outside the images folder {root}; "
                          f"nothing was imported") from None
    if not inside.parts:
        raise FormatError(f"{what} file name '{relative}' names the images folder itself, not a file")
    return full, PurePosixPath(*inside.parts).as_posix()


def relative_posix(target: Path, start: Path) -> str:
    """`target` relative to the folder `start`, with '/' separators (absolute when impossible, e.g.
    another drive on Windows)."""
    try:
        return Path(os.path.relpath(os.path.abspath(target), os.path.abspath(start))).as_posix()
    except ValueError:
        return Path(os.path.abspath(target)).as_posix()


def rebase_dataset(dataset: Dataset, project_root: Path) -> Dataset:
    """The dataset with image file names relative to the project's images root (a UserError when an
    image lies outside it)."""
    if dataset.root is None:
        return dataset
    src_root = Path(os.path.abspath(dataset.root))
    dst_root = Path(os.path.abspath(project_root))
    if src_root == dst_root:
        return dataset
    images = []
    for image in dataset.images:
        rel = relative_posix(src_root / image.file_name, dst_root)
        if rel.startswith("../") or rel == ".." or os.path.isabs(rel):
            raise UserError(f"image {src_root / image.file_name} is outside the project's images folder "
                            f"{dst_root}; import into a project over a folder that contains it")
        images.append(type(image)(**{**image.__dict__, "file_name": rel}))
    return Dataset(images=images, labels=dataset.labels, annotations=dataset.annotations, root=str(dst_root),
                   extra=dataset.extra)


def image_path(dataset: Dataset, image: ImageRecord) -> Path:
    """Where an image of the dataset lives on disk (relative to the working folder when root is None)."""
    return Path(dataset.root) / image.file_name if dataset.root else Path(image.file_name)


def oriented_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of an image after EXIF orientation, reading only its header; None when the
    file cannot be read as an image (the project marks it unreadable, it is not a format error)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            width, height = img.size
            orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # unreadable or not an image: reported by the project, not here
        return None
    if orientation in (5, 6, 7, 8):  # transposed or rotated by 90 degrees
        width, height = height, width
    return int(width), int(height)


def default_color(index: int) -> RGB:
    """A distinct, stable colour for the label at `index` (the project palette's sequence)."""
    return palette.default_color(index)


def check_int(value: Any, what: str, *, positive: bool = False) -> int:
    """An int from JSON (bools refused; integral floats such as 640.0 accepted)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FormatError(f"{what} must be a number, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise FormatError(f"{what} must be a whole number, got {value!r}")
        value = int(value)
    if positive and value <= 0:
        raise FormatError(f"{what} must be positive, got {value!r}")
    return int(value)
