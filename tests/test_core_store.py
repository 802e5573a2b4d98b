"""Store robustness: schema version and migrations, corrupt / foreign / newer files, a second writer,
and SIGKILL at random points of a scripted labelling session."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seem_annotator.core import masks, schema
from seem_annotator.core import store as store_mod
from seem_annotator.core.project import Project
from seem_annotator.core.prompts import PointPrompt
from seem_annotator.errors import StoreError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def images_root(tmp_path) -> Path:
    root = tmp_path / "imgs"
    root.mkdir()
    Image.fromarray(np.zeros((32, 40, 3), np.uint8)).save(root / "a.png")
    return root


def test_schema_version_wal_and_foreign_keys(images_root):
    with Project.create(images_root) as project:
        path = project.store_path
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    assert conn.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    s = store_mod.Store(path)
    assert s.one("PRAGMA foreign_keys")[0] == 1
    with pytest.raises(sqlite3.IntegrityError):
        with s.transaction():
            s.execute("INSERT INTO sessions (image_id, state, created_at, updated_at) VALUES (999, 'open', 0, 0)")
    assert s.one("SELECT COUNT(*) FROM sessions")[0] == 0  # rolled back
    s.close()


def test_migrations_run_in_order(tmp_path, monkeypatch):
    calls = []

    def add_column(conn):
        calls.append("v2")
        conn.execute("ALTER TABLE labels ADD COLUMN note TEXT")

    path = tmp_path / "p.sqlite"
    store_mod.Store(path, create=True).close()
    current = schema.SCHEMA_VERSION
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, add_column])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", current + 1)
    s = store_mod.Store(path)
    assert calls == ["v2"] and s.one("PRAGMA user_version")[0] == current + 1
    s.execute("SELECT note FROM labels")
    s.close()
    backup = sqlite3.connect(tmp_path / f"p.sqlite.schema{current}.bak")  # the pre-upgrade file is kept
    assert backup.execute("PRAGMA user_version").fetchone()[0] == current
    backup.close()


def test_a_version_1_store_is_upgraded_and_keeps_its_rows(tmp_path, monkeypatch):
    path = tmp_path / "old.sqlite"
    with monkeypatch.context() as m:  # a store written by the first release (schema 1)
        m.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])
        m.setattr(schema, "SCHEMA_VERSION", 1)
        old = store_mod.Store(path, create=True)
        with old.transaction():
            old.execute("INSERT INTO images (file_name, width, height) VALUES ('a.jpg', 4, 3)")
        old.close()
    ro = store_mod.Store(path, read_only=True)  # readable as it is, and left at its version
    assert ro.one("PRAGMA user_version")[0] == 1 and ro.one("SELECT width FROM images")[0] == 4
    ro.close()
    s = store_mod.Store(path)
    assert s.one("PRAGMA user_version")[0] == schema.SCHEMA_VERSION
    row = s.one("SELECT file_name, width, file_size, mtime_ns FROM images")
    assert tuple(row) == ("a.jpg", 4, None, None)
    s.close()


def test_failed_migration_leaves_file_at_old_version(tmp_path, monkeypatch):
    def broken(conn):
        conn.execute("ALTER TABLE labels ADD COLUMN half_done TEXT")
        raise RuntimeError("migration bug")

    path = tmp_path / "p.sqlite"
    store_mod.Store(path, create=True).close()
    current = schema.SCHEMA_VERSION
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, broken])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", current + 1)
    with pytest.raises(RuntimeError):
        store_mod.Store(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == current
    assert "half_done" not in [r[1] for r in conn.execute("PRAGMA table_info(labels)")]
    conn.close()


def test_newer_schema_is_refused(images_root):
    with Project.create(images_root) as project:
        path = project.store_path
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer seem-annotator"):
        Project.open(images_root)


def test_corrupt_and_foreign_files_are_refused_and_untouched(tmp_path, images_root):
    with Project.create(images_root) as project:
        project.add_label("dog")
        path = project.store_path
    good = path.read_bytes()

    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(StoreError, match="not a seem-annotator project"):
        Project.open(junk)
    assert junk.read_bytes() == b"definitely not sqlite" * 100

    foreign = tmp_path / "other.sqlite"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = foreign.read_bytes()
    with pytest.raises(StoreError, match="not a seem-annotator project"):
        Project.open(foreign)
    assert foreign.read_bytes() == before

    # Damage pages after the header: the header still says SQLite, the content is garbage.
    broken = bytearray(good)
    page = 4096
    for off in range(page, len(broken), 7):
        broken[off] = 0x5A
    path.write_bytes(bytes(broken))
    with pytest.raises(StoreError, match="corrupt|unreadable"):
        Project.open(images_root)
    assert path.read_bytes() == bytes(broken)
    with pytest.raises(StoreError, match="already exists"):
        Project.create(images_root)  # never silently replaced


def test_second_writer_gets_clear_error(images_root):
    with Project.create(images_root) as first:
        with pytest.raises(StoreError, match="already open for writing"):
            Project.open(images_root)
        code = ("import sys\nfrom seem_annotator.core.project import Project\n"
                "try:\n    Project.open(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__, e)\n")
        out = subprocess.run([sys.executable, "-c", code, str(images_root)], capture_output=True, text=True,
                             cwd=REPO, timeout=60).stdout
        assert out.startswith("StoreError") and "already open" in out
        with Project.open(images_root, read_only=True) as reader:  # readers are fine
            assert len(reader.images()) == 1
        first.add_label("still-writable")
    with Project.open(images_root) as again:  # lock released on close
        assert again.labels()[0].name == "still-writable"


# -- SIGKILL mid-work ------------------------------------------------------------------------------

WORKER = r'''
import hashlib, json, sys
import numpy as np
from seem_annotator.core import masks
from seem_annotator.core.project import Project
from seem_annotator.core.prompts import BoxPrompt, PointPrompt, TextPrompt

H, W = 32, 40

def rect(i):
    m = np.zeros((H, W), bool)
    y, x = (i * 7) % 24, (i * 5) % 30
    m[y:y + 6 + i % 3, x:x + 8] = True
    return masks.encode(m)

def digest(p, img):
    anns = [(a.id, a.label_id, a.rle["counts"], a.order) for a in p.annotations(img)]
    s = p.current_session(img)
    cur = None if s is None or not s.rounds else (s.id, [(r.id, r.mask_rle["counts"]) for r in s.rounds])
    return hashlib.sha1(json.dumps([anns, cur]).encode()).hexdigest()[:16]

p = Project.open_or_create(sys.argv[1])
img = p.images()[0].id
dog = p.label_by_name("dog") or p.add_label("dog")
cat = p.label_by_name("cat") or p.add_label("cat")
print("ready", digest(p, img), flush=True)
k = 0
for cycle in range(int(sys.argv[2])):
    s = p.start_session(img)
    for prompts in [(PointPrompt(3, 4),), (BoxPrompt(1, 1, 20, 20), TextPrompt("dog")), (PointPrompt(9, 9, False),)]:
        k += 1
        p.add_round(s.id, prompts, "scripted", rect(k), [("dog", 0.8)], 0.5)
        print("round", digest(p, img), flush=True)
    ann = p.accept_session(s.id, dog.id)
    print("accept", digest(p, img), flush=True)
    p.relabel(ann.id, cat.id)
    print("relabel", digest(p, img), flush=True)
    k += 1
    p.set_mask(ann.id, rect(k))
    print("edit", digest(p, img), flush=True)
    s2 = p.start_session(img)
    for prompts in [(PointPrompt(5, 5),), (PointPrompt(6, 6),)]:
        k += 1
        p.add_round(s2.id, prompts, "scripted", rect(k), [("cat", 0.6)])
        print("round", digest(p, img), flush=True)
    if cycle % 2:
        p.discard_session(s2.id)
        print("discard", digest(p, img), flush=True)
    else:
        p.accept_session(s2.id, dog.id)
        print("accept", digest(p, img), flush=True)
        if len(p.annotations(img)) > 1:
            p.reorder(p.annotations(img)[-1].id, 0)
            print("reorder", digest(p, img), flush=True)
for step in ["undo"] * 6 + ["redo"] * 3:  # killed mid-undo/redo is as safe as mid-action
    getattr(p, step)(img)
    print(step, digest(p, img), flush=True)
print("end", flush=True)
'''


def _run_worker(root: Path, cycles: int, kill_after: float | None) -> tuple[list[str], float]:
    """Run the scripted worker; returns its output lines and (when not killed) the seconds from
    "ready" to "end"."""
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(root), str(cycles)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    assert proc.stdout is not None
    first = proc.stdout.readline()  # wait until imports are done and the project is open
    assert first.startswith("ready"), first + proc.stderr.read()
    lines.append(first.strip())
    ready = time.perf_counter()
    elapsed = 0.0
    if kill_after is not None:
        time.sleep(kill_after)
        os.kill(proc.pid, signal.SIGKILL)
    else:
        while (line := proc.stdout.readline()) and line.strip() != "end":
            lines.append(line.strip())
        elapsed = time.perf_counter() - ready
        lines.append(line.strip())
    out, err = proc.communicate(timeout=120)
    lines += [ln for ln in out.splitlines() if ln]
    if kill_after is None:
        assert proc.returncode == 0, err
    return lines, elapsed


def _digest(project: Project, img: int) -> str:
    anns = [(a.id, a.label_id, a.rle["counts"], a.order) for a in project.annotations(img)]
    s = project.current_session(img)
    cur = None if s is None or not s.rounds else (s.id, [(r.id, r.mask_rle["counts"]) for r in s.rounds])
    return hashlib.sha1(json.dumps([anns, cur]).encode()).hexdigest()[:16]


@pytest.mark.slow
def test_sigkill_at_random_points_loses_no_committed_action(tmp_path):
    cycles = 8
    # A reference run to completion gives every state the deterministic script passes through.
    ref_root = tmp_path / "ref"
    ref_root.mkdir()
    Image.fromarray(np.zeros((32, 40, 3), np.uint8)).save(ref_root / "a.png")
    ref, duration = _run_worker(ref_root, cycles, None)
    assert ref[-1] == "end"
    states = [ln.split()[1] for ln in ref[:-1]]
    forward_end = max(i for i, ln in enumerate(ref[:-1]) if ln.split()[0] not in ("undo", "redo"))

    rng = random.Random(1234)
    for run in range(6):
        root = tmp_path / f"run{run}"
        root.mkdir()
        Image.fromarray(np.zeros((32, 40, 3), np.uint8)).save(root / "a.png")
        # One run aims at the closing undo/redo phase, the others anywhere.
        lines, _ = _run_worker(root, cycles, rng.uniform(0.9 if run == 0 else 0.0, 1.0) * duration)
        if lines[-1] != "end" and len(lines[-1].split()) < 2:
            lines.pop()  # the kill cut the last report short: that action counts as in flight
        assert all(len(ln.split()) == 2 for ln in lines if ln != "end"), lines
        reported = [ln.split()[1] for ln in lines if ln != "end"]
        k = len(reported) - 1
        assert reported == states[: k + 1]  # the script is deterministic

        with Project.open(root) as project:
            img = project.images()[0].id
            now = _digest(project, img)
            # Every reported action is there; at most the one in flight when killed is also there.
            assert now in states[k: k + 2], (run, k)
            reached = k if now == states[k] else k + 1
            if reached <= forward_end:
                # The undo stack survived: walking it back visits every earlier state, redo returns.
                chain = [d for i, d in enumerate(states[: reached + 1]) if i == 0 or d != states[i - 1]]
                for expected in reversed(chain[:-1]):
                    assert project.undo(img) is not None
                    assert _digest(project, img) == expected
            else:
                # Killed during the undo/redo phase: the full history is still there both ways.
                while project.undo(img):
                    pass
                assert _digest(project, img) == states[0]
            assert not project.can_undo(img)
            while project.redo(img):
                pass
            assert _digest(project, img) == states[min(reached, forward_end)]


def test_disk_full_is_a_store_error_and_writes_nothing(images_root):
    with Project.create(images_root) as project:
        img = project.images()[0].id
        session = project.start_session(img)
        project.add_round(session.id, (PointPrompt(1, 1),), "b", masks.encode(np.eye(32, 40, dtype=bool)), [])
        pages = project._store.one("PRAGMA page_count")[0]
        project._store.execute(f"PRAGMA max_page_count = {pages}")  # the "disk" is now full
        noisy = masks.encode(np.random.default_rng(0).random((32, 40)) > 0.5)
        with pytest.raises(StoreError, match="not saved"):
            for _ in range(50):  # rounds with incompressible masks until a new page is needed
                project.add_round(session.id, (PointPrompt(2, 2),), "b", noisy, [])
        rounds = len(project.current_session(img).rounds)
        assert project.history(img)[-1] == ("round", False) and len(project.history(img)) == rounds
        project._store.execute("PRAGMA max_page_count = 1073741823")
        label = project.add_label("x")
        assert project.accept_session(session.id, label.id).label_id == label.id
