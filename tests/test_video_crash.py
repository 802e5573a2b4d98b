"""SIGKILL during propagation loses no committed frame and leaves no half-written one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from video_support import frame_ids, small_sequence, start_track

from seem_annotator.core.project import Project

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import sys, time
from seem_annotator.core.project import Project
from seem_annotator.engine.classical_backend import ClassicalBackend
from seem_annotator.video.propagate import PropagationSettings, Propagator
project = Project.open(sys.argv[1])
prop = Propagator(project, ClassicalBackend(), PropagationSettings(min_confidence=0.0))
prop.run([int(sys.argv[2])], progress=lambda done, total: print(done, flush=True))
print("finished", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_keeps_every_committed_frame(tmp_path: Path):
    project, seq_id, gts = small_sequence(tmp_path, n=8)
    with project:
        track = start_track(project, seq_id, 0, gts[0])
        ids = frame_ids(project, seq_id)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "proj"), str(track)],
                             stdout=subprocess.PIPE, text=True, env=env)
    reported = 0
    try:
        for line in child.stdout:
            if line.strip().isdigit():
                reported = int(line)
            if reported >= 3 or line.startswith("finished"):
                break
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert reported >= 3
    with Project.open(tmp_path / "proj") as project:
        states = project.tracks.frames(track)
        done = sorted(s.frame_index for s in states.values() if s.kind == "propagated")
        # Every frame reported done was committed, in order, each whole: mask, row and undo entry.
        assert done[:reported] == list(range(1, reported + 1))
        for s in states.values():
            assert project.annotation(s.annotation_id).image_id == s.image_id
            if s.kind == "propagated":
                assert project.history(s.image_id)[-1] == ("propagate", False)
        for image_id in ids:
            assert len(project.annotations(image_id)) <= 1
