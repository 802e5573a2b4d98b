"""The project store: one SQLite file (stdlib `sqlite3`) in WAL mode.

Why SQLite: every user action is one transaction that is durable when the call returns, so the
app can be SIGKILLed at any instant and reopen with every committed action. `synchronous=FULL`
makes each commit survive a power cut too (user actions are rare enough that the fsync is free).

Schema version lives in `PRAGMA user_version`; `schema.MIGRATIONS[i]` upgrades version i to i+1 and is
applied in order inside one transaction. A file written by a newer release (higher version) is
refused with `StoreError` rather than guessed at. `PRAGMA application_id` marks our files so an
unrelated SQLite database is never mistaken for (or turned into) a project.

One writer per project: `Store(..., read_only=False)` takes an exclusive advisory lock on a
sidecar `<store>.lock` file (released by the OS when the process dies, even on SIGKILL). A second
writer gets a clear `StoreError` instead of interleaving its writes with the first.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from seem_annotator.core import schema
from seem_annotator.errors import StoreError

DEFAULT_DIRNAME = ".seem-annotator"
DEFAULT_FILENAME = "project.sqlite"


def dumps(value: Any) -> str:
    """Compact, deterministic JSON for store columns."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class _Lock:
    """Exclusive advisory lock on a sidecar file (fcntl on POSIX, msvcrt on Windows)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"Cannot write in {self.path.parent} ({exc.strerror or exc}); open the project "
                             "read-only or keep its store in a writable folder.") from exc
        try:
            try:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except ImportError:  # Windows
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            os.close(fd)
            holder = ""
            try:
                holder = self.path.read_text().strip()
            except OSError:
                pass
            who = f" (process {holder})" if holder else ""
            raise StoreError(
                f"The project {self.path.with_suffix('')} is already open for writing in another "
                f"window or process{who}; close it there first."
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None


class Store:
    """An open project database. Use `transaction()` for every write.

    `path`: the SQLite file. `create=True` makes a new file (refused if one exists). `read_only`
    opens without the writer lock and refuses writes.
    """

    def __init__(self, path: str | os.PathLike, *, create: bool = False, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock: _Lock | None = None
        self._tx_depth = 0
        # One connection shared by the GUI thread and workers: a re-entrant lock keeps a
        # transaction's statements together.
        self._mutex = threading.RLock()
        if create:
            if self.path.exists() and not _is_blank(self.path):
                raise StoreError(f"A project store already exists at {self.path}; open it instead.")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"Cannot create the project folder {self.path.parent} ({exc.strerror or exc}); "
                                 "keep the project store in a writable folder.") from exc
        elif not self.path.is_file():
            raise StoreError(f"No project store found at {self.path}.")
        elif self.path.stat().st_size > 0 and not _looks_like_sqlite(self.path):
            raise StoreError(f"{self.path} is not a seem-annotator project (not an SQLite file); "
                             "it was left untouched.")
        if not read_only:
            self._lock = _Lock(self.path.with_name(self.path.name + ".lock"))
            self._lock.acquire()
        try:
            self.conn = self._connect()
            self._prepare(create)
        except BaseException:
            if self._lock:
                self._lock.release()
            raise

    # -- opening ---------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.read_only:
                uri = self.path.resolve().as_uri() + "?mode=ro"
                conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            else:
                conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.row_factory = sqlite3.Row
            return conn
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"The project store {self.path} is unreadable or corrupt ({exc}); "
                             "it was left untouched.") from exc

    def _prepare(self, create: bool) -> None:
        try:
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            app_id = self.conn.execute("PRAGMA application_id").fetchone()[0]
            blank = version == 0 and app_id == 0 and \
                self.conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
            if not create and not blank:
                if app_id != schema.APPLICATION_ID:
                    raise StoreError(f"{self.path} is an SQLite file but not a seem-annotator project; "
                                     "it was left untouched.")
                problem = self.conn.execute("PRAGMA quick_check").fetchone()[0]
                if problem != "ok":
                    raise StoreError(f"The project store {self.path} is corrupt ({problem}); "
                                     "it was left untouched.")
            if version > schema.SCHEMA_VERSION:
                raise StoreError(f"The project {self.path} was written by a newer seem-annotator "
                                 f"(schema {version} > {schema.SCHEMA_VERSION}); upgrade to open it.")
            if not self.read_only:
                # Only now that the file is known to be ours (or new) may we change its journal mode.
                mode = self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"Cannot enable write-ahead logging on {self.path} (got {mode}).")
                self.conn.execute("PRAGMA synchronous = FULL")
            if version < schema.SCHEMA_VERSION:
                if self.read_only and version < schema.READABLE_FROM:
                    raise StoreError(f"The project {self.path} needs an upgrade (schema {version}); "
                                     "open it once for writing.")
                if not self.read_only:
                    self._migrate(version)
                    version = schema.SCHEMA_VERSION
                elif version < schema.AUTO_ANNOTATION_VERSION:
                    schema.add_auto_annotation_shims(self.conn)
            self.version = version  # the file's schema version as opened
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            if getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
                raise StoreError(f"The project {self.path} is busy in another process; try again.") from exc
            raise StoreError(f"The project store {self.path} is unreadable or corrupt ({exc}); "
                             "it was left untouched.") from exc
        except BaseException:
            self.conn.close()
            raise

    def _migrate(self, version: int) -> None:
        if version > 0:
            self._backup(self.path.with_name(f"{self.path.name}.schema{version}.bak"))
        with self.transaction():
            for step in range(version, schema.SCHEMA_VERSION):
                schema.MIGRATIONS[step](self.conn)
            self.conn.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
            self.conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION}")

    def _backup(self, target: Path) -> None:
        """A consistent copy of the database (SQLite online backup) before an upgrade rewrites it."""
        try:
            dest = sqlite3.connect(str(target))
            try:
                self.conn.backup(dest)
            finally:
                dest.close()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise StoreError(f"Could not back up {self.path} to {target} before upgrading it ({exc}); "
                             "nothing was changed.") from exc

    # -- use -------------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic, durable unit of work; nests (inner blocks join the outer transaction)."""
        if self.read_only:
            raise StoreError(f"The project {self.path} is open read-only.")
        with self._mutex:
            yield from self._transaction()

    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self._tx_depth:
            self._tx_depth += 1
            try:
                yield self.conn
            finally:
                self._tx_depth -= 1
            return
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"The project {self.path} is busy in another process ({exc}).") from exc
        self._tx_depth = 1
        try:
            yield self.conn
        except sqlite3.DatabaseError as exc:
            self._tx_depth = 0
            self._rollback()
            if _is_environment_error(exc):
                # Disk full, read-only file system, I/O error: the user's to fix; nothing was written.
                raise StoreError(f"Could not save to {self.path} ({exc}); the last action was not saved.") from exc
            raise
        except BaseException:
            self._tx_depth = 0
            self._rollback()
            raise
        self._tx_depth = 0
        try:
            self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self._rollback()
            raise StoreError(f"Could not save to {self.path} ({exc}); the last action was not saved.") from exc

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the connection for several reads that must see one consistent state."""
        with self._mutex:
            yield

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        if self.conn is None:
            raise StoreError(f"The project {self.path} is closed.")
        with self._mutex:
            return self.conn.execute(sql, params)

    def query(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        with self._mutex:
            return self.execute(sql, params).fetchall()

    def one(self, sql: str, params: Any = ()) -> sqlite3.Row | None:
        with self._mutex:
            return self.execute(sql, params).fetchone()

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return default if row is None else row["value"]

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction():
            self.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def close(self) -> None:
        """Close the connection (checkpointing the WAL) and drop the writer lock."""
        conn = getattr(self, "conn", None)
        if conn is not None:
            try:
                if not self.read_only:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.DatabaseError:
                pass  # a checkpoint is an optimisation; the WAL stays valid
            conn.close()
            self.conn = None  # type: ignore[assignment]
        if self._lock:
            self._lock.release()
            self._lock = None


_ENVIRONMENT_ERRORS = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_BUSY", "SQLITE_LOCKED",
                       "SQLITE_CANTOPEN", "SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_PERM")


def _is_environment_error(exc: sqlite3.DatabaseError) -> bool:
    """True for failures caused by the disk or another process rather than by the statement."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(_ENVIRONMENT_ERRORS)


def _is_blank(path: Path) -> bool:
    """An empty file or an SQLite file with no tables (what a crash during creation leaves)."""
    if path.stat().st_size == 0:
        return True
    if not _looks_like_sqlite(path):
        return False
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return False


def _looks_like_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def now() -> float:
    """UNIX seconds, the timestamp unit of every record."""
    return time.time()
