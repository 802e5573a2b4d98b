"""`seem-annotator init` and `annotate` as a user runs them: a SIGKILLed run resumed to the
proposals of an uninterrupted one, one clear line for each user error, the Ray engine giving the
local engine's proposals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seem_annotator.cli.main import main
from seem_annotator.core.project import Project
from tests.conftest import DATA, REPO_ROOT, SHARED

FIXTURE = SHARED / "seem" / "fixtures" / "tiny_focalt_v1"
OTHER = SHARED / "seem" / "fixtures" / "tiny_samvitb_v1_small"
IMAGES = DATA / "COCO_MVal_subset" / "img"
pytestmark = pytest.mark.skipif(not (FIXTURE / "state_dict.pt").is_file() or not IMAGES.is_dir(),
                                reason="shared fixture model or COCO subset missing")
MODEL = ["--model", str(FIXTURE / "config.yaml"), "--checkpoint", str(FIXTURE / "state_dict.pt")]


def make_folder(dest: Path, count: int) -> Path:
    dest.mkdir(parents=True)
    for path in sorted(IMAGES.iterdir())[:count]:
        shutil.copy(path, dest / path.name)
    return dest


def proposals_of(folder: Path) -> list[tuple]:
    with Project.open(folder, read_only=True) as project:
        names = {i.id: i.file_name for i in project.images()}
        return sorted((names[p.image_id], p.label, p.mode, p.score, p.rle["counts"])
                      for p in project.proposals(state=None))


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "seem_annotator", *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}


def test_init_creates_a_project_with_labels(tmp_path, capsys):
    folder = make_folder(tmp_path / "photos", 2)
    assert main(["info", "--project", str(folder)]) == 2
    assert f"seem-annotator init {folder}" in capsys.readouterr().err
    assert main(["init", str(folder), "--labels", "cat,dog"]) == 0
    assert "2 images, 2 labels" in capsys.readouterr().out
    assert main(["info", "--project", str(folder), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["images"] == 2 and info["labels"] == {"cat": 0, "dog": 0} and info["proposals"] == 0
    store = tmp_path / "elsewhere" / "p.sqlite"
    other = make_folder(tmp_path / "other", 1)
    assert main(["init", str(other), "--store", str(store)]) == 0 and store.is_file()
    assert main(["init", str(folder)]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--model", "focalt_v1"], "Auto-annotation needs a SEEM checkpoint"),
    (["--model", str(FIXTURE / "config.yaml")], "give its weights with --checkpoint"),
    (["--model", str(FIXTURE / "config.yaml"), "--checkpoint", str(OTHER / "state_dict.pt")], "does not match"),
    (MODEL + ["--mode", "text"], "The text mode needs labels"),
    (MODEL + ["--mode", "exemplar", "--labels", "dog"], "The exemplar mode needs exemplars"),
    (MODEL + ["--mode", "colour"], "Unknown annotation mode colour"),
])
def test_user_errors_are_one_line(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setenv("SEEM_ANNOTATOR_CACHE", str(tmp_path / "cache"))  # no downloaded model
    folder = make_folder(tmp_path / "photos", 1)
    assert main(["init", str(folder)]) == 0
    capsys.readouterr()
    assert main(["annotate", "--project", str(folder), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("seem-annotator: error: ")
    with Project.open(folder, read_only=True) as project:
        assert not project.runs()  # nothing recorded for a run that could not start


def test_missing_ray_says_how_to_install(tmp_path, capsys, monkeypatch):
    folder = make_folder(tmp_path / "photos", 1)
    assert main(["init", str(folder)]) == 0
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert main(["annotate", "--project", str(folder), *MODEL, "--engine", "ray"]) == 2
    assert "pip install seem-annotator[ray]" in capsys.readouterr().err


@pytest.mark.slow
def test_sigkilled_run_resumes_to_the_uninterrupted_proposals(tmp_path):
    count = 12
    clean, killed = make_folder(tmp_path / "clean", count), make_folder(tmp_path / "killed", count)
    for folder in (clean, killed):
        subprocess.run(cli("init", str(folder), "--labels", "person,dog"), env=env(), check=True)
    args = ["--mode", "everything,text", "--threshold", "0.05", *MODEL]
    out = tmp_path / "clean.json"
    subprocess.run(cli("annotate", "--project", str(clean), *args, "--json", str(out)), env=env(), check=True)
    assert json.loads(out.read_text())["images"] == count
    reference = proposals_of(clean)
    assert reference

    proc = subprocess.Popen(cli("annotate", "--project", str(killed), *args), env=env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = killed / ".seem-annotator" / "project.sqlite"
    merged = 0
    deadline = time.monotonic() + 120
    try:
        while merged < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
            try:
                conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
                merged = conn.execute("SELECT COUNT(*) FROM run_images").fetchone()[0]
                conn.close()
            except sqlite3.OperationalError:
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert 3 <= merged < count, "the run was not killed in the middle"
    partial = proposals_of(killed)
    assert len({p[0] for p in partial}) < count

    out = tmp_path / "resumed.json"
    subprocess.run(cli("annotate", "--project", str(killed), *args, "--json", str(out)), env=env(), check=True)
    figures = json.loads(out.read_text())
    assert figures["skipped"] >= merged and figures["images"] + figures["skipped"] == count
    assert {"images", "skipped", "proposals", "seconds", "images_per_s"} <= set(figures)
    assert proposals_of(killed) == reference  # nothing lost, nothing duplicated


@pytest.mark.slow
def test_ray_engine_gives_the_local_proposals(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install seem-annotator[ray])")
    import torch

    threads = torch.get_num_threads()
    local, distributed = make_folder(tmp_path / "local", 6), make_folder(tmp_path / "ray", 6)
    args = ["--mode", "everything,text", "--labels", "person,dog", "--threshold", "0.05", *MODEL]
    for folder in (local, distributed):
        assert main(["init", str(folder)]) == 0
    # One torch thread, like each Ray worker: float sums in the same order, bit-identical masks.
    assert main(["annotate", "--project", str(local), *args, "--threads", "1"]) == 0
    try:
        out = tmp_path / "ray.json"
        assert main(["annotate", "--project", str(distributed), *args, "--engine", "ray", "--workers", "2",
                     "--json", str(out)]) == 0
    finally:
        ray.shutdown()
        torch.set_num_threads(threads)
    assert json.loads(out.read_text())["images"] == 6
    assert proposals_of(distributed) == proposals_of(local) != []
