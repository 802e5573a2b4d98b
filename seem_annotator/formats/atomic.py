"""Atomic file writes: a reader (or a crash) sees the old file or the complete new one, never half.

Each write goes to a temporary file in the destination folder, is flushed and fsync'd, then
`os.replace`d over the destination, and the folder is fsync'd so the rename itself survives a power
cut. Multi-file exports stage every file's bytes first (see `write_files`) so a conversion error
cannot leave some files written and others not.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from seem_annotator.errors import UserError


def _fsync_dir(folder: Path) -> None:
    # Directories cannot be opened for fsync on Windows; the rename is still atomic there.
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask_by_setting() -> int:
    # Without /proc the umask can only be read by setting it: done once, at import, before any
    # threads write files.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_IMPORT_UMASK = _umask_by_setting()


def current_umask() -> int:
    """The process umask (Linux reports it in /proc without changing it; elsewhere the import-time value)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return _IMPORT_UMASK


def target_mode(path: Path) -> int:
    """The permission bits a plain `open(path, "w")` would leave: an existing file keeps its mode,
    a new one gets 0666 minus the umask (mkstemp's 0600 must not survive the rename)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return 0o666 & ~current_umask()


def _chmod(fd_or_path: int | str | os.PathLike, mode: int) -> None:
    if os.name == "nt":
        return  # only the read-only bit exists there; the temporary file's default is fine
    try:
        os.chmod(fd_or_path, mode)
    except OSError:
        pass  # a file system without modes (some network shares): the write itself matters more


def write_bytes(path: str | os.PathLike, data: bytes, *, sync_dir: bool = True) -> Path:
    """Atomically write `data` to `path` (parent folders are created). Returns the path.
    `sync_dir=False` leaves the folder fsync to the caller (one per folder for many files)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            _chmod(handle.fileno(), target_mode(path))
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise UserError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise
    if sync_dir:
        _fsync_dir(path.parent)
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 text."""
    return write_bytes(path, text.encode("utf-8"))


def dumps_json(obj: Any, indent: int | None = None) -> bytes:
    """JSON bytes (UTF-8, non-ASCII kept readable, no NaN: invalid JSON for other tools)."""
    try:
        return json.dumps(obj, ensure_ascii=False, indent=indent, allow_nan=False).encode("utf-8")
    except ValueError as exc:
        raise UserError(f"cannot write JSON: {exc}") from exc


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = None) -> Path:
    """Atomically write `obj` as JSON."""
    return write_bytes(path, dumps_json(obj, indent))


def write_files(files: Iterable[tuple[str | os.PathLike, bytes]]) -> list[Path]:
    """Atomically write several files whose bytes are already prepared, each one atomic.

    The caller builds every file's content first, so nothing is written when preparing any of them
    fails; a crash part-way leaves each file either old or complete.
    """
    written = [write_bytes(path, data, sync_dir=False) for path, data in files]
    for folder in {p.parent for p in written}:
        _fsync_dir(folder)
    return written


class StagedFolder:
    """Files for one folder export, written into a hidden staging folder beside `out` and moved into
    place only when all of them are complete (`commit`); `abort` (or an exception inside the `with`)
    removes them. Keeps memory flat for exports of many large files (PNG masks)."""

    def __init__(self, out: str | os.PathLike) -> None:
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"{self.out} is a file, not a folder")
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.stage = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.staging-", dir=self.out.parent))
        except OSError as exc:
            raise UserError(f"cannot write into {self.out.parent}: {exc.strerror or exc}") from exc
        self.relative: list[Path] = []

    def write(self, relative: str | os.PathLike, data: bytes) -> None:
        """Stage one file (path relative to the output folder)."""
        rel = Path(relative)
        if rel.is_absolute() or ".." in rel.parts:
            raise UserError(f"refusing to write {rel} outside {self.out}")
        target = self.stage / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise UserError(f"cannot write {self.out / rel}: {exc.strerror or exc}") from exc
        self.relative.append(rel)

    def commit(self) -> list[Path]:
        """Move every staged file into the output folder (each move atomic), then fsync the folders."""
        written = []
        try:
            for rel in self.relative:
                dst = self.out / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                _chmod(self.stage / rel, target_mode(dst))
                os.replace(self.stage / rel, dst)
                written.append(dst)
            for folder in {p.parent for p in written}:
                _fsync_dir(folder)
        except OSError as exc:
            raise UserError(f"cannot move the export into {self.out}: {exc.strerror or exc}") from exc
        finally:
            self.abort()
        return written

    def abort(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)

    def __enter__(self) -> StagedFolder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is not None:
            self.abort()
