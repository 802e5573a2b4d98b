"""The project store's schema and its ordered migrations.

`MIGRATIONS[i]` takes a connection at schema version i (`PRAGMA user_version`) and brings it to
i + 1; `Store` applies the missing ones in order inside one transaction. To change the schema, append
a migration; never edit a released one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

APPLICATION_ID = 0x5EE3A770  # "seem annotator", fits in a signed 32-bit int

_SCHEMA_V1 = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file_name TEXT NOT NULL UNIQUE,
    width INTEGER NOT NULL DEFAULT 0,
    height INTEGER NOT NULL DEFAULT 0,
    sha256 TEXT,
    status TEXT,                      -- NULL = derived; 'done' (or another status) = set by the user
    readable INTEGER NOT NULL DEFAULT 1,
    error TEXT,
    extra TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    color TEXT NOT NULL,              -- JSON [r, g, b]
    shortcut INTEGER,
    extra TEXT NOT NULL DEFAULT '{}',
    deleted INTEGER NOT NULL DEFAULT 0 -- soft delete: undo may bring back an annotation using it
);
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id INTEGER NOT NULL REFERENCES images(id),
    state TEXT NOT NULL,              -- 'open' | 'accepted' | 'discarded'
    annotation_id INTEGER,            -- the annotation an accepted session became
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX sessions_image ON sessions(image_id, state);
CREATE TABLE rounds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    idx INTEGER NOT NULL,
    prompts TEXT NOT NULL,            -- JSON list of prompt_to_dict
    backend TEXT NOT NULL,
    mask_rle TEXT,                    -- JSON RLE or NULL
    label_proposals TEXT NOT NULL,    -- JSON [[name, score], ...]
    score REAL,
    created_at REAL NOT NULL,
    UNIQUE (session_id, idx)
);
CREATE TABLE annotations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id INTEGER NOT NULL REFERENCES images(id),
    label_id INTEGER NOT NULL REFERENCES labels(id),
    rle TEXT NOT NULL,
    score REAL,
    iscrowd INTEGER NOT NULL DEFAULT 0,
    z INTEGER NOT NULL DEFAULT 0,
    source TEXT NOT NULL DEFAULT '{}',
    extra TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX annotations_image ON annotations(image_id, z);
CREATE TABLE history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id INTEGER NOT NULL REFERENCES images(id),
    action TEXT NOT NULL,
    changes TEXT NOT NULL,            -- JSON list of {table, id, before, after}
    undone INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE INDEX history_image ON history(image_id, undone, id);
"""

# MIGRATIONS[i] takes a connection at schema version i and brings it to i + 1.
def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    _exec_script(conn, _SCHEMA_V1)


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    # The file's size and modification time when it was last hashed: a rescan re-reads only files
    # whose stat changed. NULL (older rows) = not recorded yet.
    conn.execute("ALTER TABLE images ADD COLUMN file_size INTEGER")
    conn.execute("ALTER TABLE images ADD COLUMN mtime_ns INTEGER")


_AUTO_ANNOTATION_TABLES = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,         -- RunSettings.key(): the same settings resume the same run
    settings TEXT NOT NULL,           -- JSON RunSettings.to_dict()
    model TEXT NOT NULL,
    checkpoint_sha256 TEXT,           -- NULL = random weights (benchmarks)
    engine TEXT NOT NULL,             -- engine of the latest invocation ('local' | 'ray')
    state TEXT NOT NULL,              -- 'running' | 'finished'
    started_at REAL NOT NULL,
    finished_at REAL
);
CREATE TABLE run_images (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    image_id INTEGER NOT NULL REFERENCES images(id),
    state TEXT NOT NULL,              -- 'done' | 'failed'
    error TEXT,
    seconds REAL,
    proposals INTEGER NOT NULL DEFAULT 0,
    finished_at REAL NOT NULL,
    PRIMARY KEY (run_id, image_id)
);
CREATE TABLE proposals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    image_id INTEGER NOT NULL REFERENCES images(id),
    label TEXT NOT NULL,
    mode TEXT NOT NULL,               -- 'everything' | 'text' | 'exemplar'
    score REAL NOT NULL,
    rle TEXT NOT NULL,                -- JSON COCO RLE at the image's full oriented size
    bbox TEXT NOT NULL,               -- JSON [x, y, w, h]
    state TEXT NOT NULL DEFAULT 'pending', -- 'pending' | 'accepted' | 'rejected'
    annotation_id INTEGER,            -- the annotation an accepted proposal became
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX proposals_image ON proposals(image_id, state);
CREATE INDEX proposals_run ON proposals(run_id, image_id)
"""


def _migrate_auto_annotation(conn: sqlite3.Connection) -> None:
    # Auto-annotation: runs, per-image run state, proposals, and provenance on annotations
    # ('interactive', 'imported:<format>', 'run:<id>/<mode>'; who reviewed it and when).
    _exec_script(conn, _AUTO_ANNOTATION_TABLES)
    conn.execute("ALTER TABLE annotations ADD COLUMN provenance TEXT")
    conn.execute("ALTER TABLE annotations ADD COLUMN reviewed_by TEXT")
    conn.execute("ALTER TABLE annotations ADD COLUMN reviewed_at REAL")
    conn.execute("UPDATE annotations SET provenance = CASE "
                 "WHEN json_extract(source, '$.imported') IS NOT NULL "
                 "THEN 'imported:' || json_extract(source, '$.imported') "
                 "ELSE 'interactive' END")


def add_auto_annotation_shims(conn: sqlite3.Connection) -> None:
    """A read-only open of a store older than the auto-annotation migration: empty TEMP tables
    stand in for the ones it adds, so readers see "no runs, no proposals" (the file is untouched)."""
    code = _AUTO_ANNOTATION_TABLES.replace("CREATE TABLE", "CREATE TEMP TABLE")
    code = "\n".join(line.replace(" REFERENCES images(id)", "").replace(" REFERENCES runs(id)", "")
                     for line in code.splitlines() if "CREATE INDEX" not in line)
    _exec_script(conn, code)



_SCHEMA_VIDEO = """
CREATE TABLE sequences (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    folder TEXT NOT NULL,             -- POSIX, relative to the images root
    source TEXT,                      -- the video file or frames folder it came from
    fps REAL,
    truncated INTEGER NOT NULL DEFAULT 0,
    error TEXT,                       -- why decoding stopped early
    extra TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL
);
CREATE TABLE sequence_frames (
    sequence_id INTEGER NOT NULL REFERENCES sequences(id),
    frame_index INTEGER NOT NULL,
    image_id INTEGER NOT NULL UNIQUE REFERENCES images(id),
    timestamp REAL,                   -- seconds from the start of the video (NULL: unknown)
    PRIMARY KEY (sequence_id, frame_index)
);
CREATE TABLE tracks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sequence_id INTEGER NOT NULL REFERENCES sequences(id),
    label_id INTEGER NOT NULL REFERENCES labels(id),
    name TEXT,
    extra TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL
);
CREATE TABLE track_frames (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    track_id INTEGER NOT NULL REFERENCES tracks(id),
    image_id INTEGER NOT NULL REFERENCES images(id),
    annotation_id INTEGER,            -- no foreign key: undo restores rows one by one; NULL = object lost
    kind TEXT NOT NULL,               -- 'keyframe' | 'propagated'
    provenance TEXT NOT NULL DEFAULT '{}',
    confidence REAL,
    flagged INTEGER NOT NULL DEFAULT 0,
    rle_digest TEXT,                  -- of the mask propagation wrote: a different mask = a person's edit
    created_at REAL NOT NULL
);
CREATE INDEX track_frames_track ON track_frames(track_id, image_id);
"""


def _migrate_video(conn: sqlite3.Connection) -> None:
    # Videos and image sequences: frames are ordinary images; tracks tie one object's annotations
    # across frames (keyframes made by a person, propagated ones with their provenance).
    _exec_script(conn, _SCHEMA_VIDEO)



MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_0_to_1, _migrate_1_to_2,
                                                           _migrate_auto_annotation, _migrate_video]
# The version at which the auto-annotation tables exist.
AUTO_ANNOTATION_VERSION = MIGRATIONS.index(_migrate_auto_annotation) + 1
SCHEMA_VERSION = len(MIGRATIONS)
# The oldest schema this code can read without upgrading it (a read-only open cannot upgrade):
# version 2 only added columns that nothing but a rescan (which writes) reads; the
# auto-annotation tables are shimmed (add_auto_annotation_shims), its annotation columns read as
# absent.
READABLE_FROM = 1



def _exec_script(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would COMMIT first; run statement by statement to stay inside the migration's
    # transaction so a failed migration leaves the file at its old version.
    code = "\n".join(line.split("--", 1)[0] for line in script.splitlines())
    for statement in code.split(";"):
        if statement.strip():
            conn.execute(statement)
