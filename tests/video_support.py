"""A small real sequence for propagation tests: DAVIS horsejump-high frames at 1/4 size."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from seem_annotator.core import masks
from seem_annotator.core.project import Project
from seem_annotator.video.importing import import_frames

SEQ = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "video" / "davis2016_horsejump-high"
SIZE = (214, 120)  # (w, h)


def small_sequence(tmp_path: Path, n: int = 8, step: int = 2) -> tuple[Project, int, list[np.ndarray]]:
    """(open project, sequence id, ground-truth masks) with `n` frames taken every `step`."""
    if not SEQ.is_dir():
        pytest.skip(f"DAVIS sequence not found at {SEQ}")
    root = tmp_path / "proj"
    (root / "clip").mkdir(parents=True)
    gts = []
    for i in range(n):
        stem = f"{i * step:05d}"
        frame = cv2.resize(cv2.imread(str(SEQ / "frames" / f"{stem}.jpg")), SIZE, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(root / "clip" / f"f{i}.png"), frame)
        gt = cv2.imread(str(SEQ / "masks" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
        gts.append(cv2.resize(gt, SIZE, interpolation=cv2.INTER_NEAREST) > 0)
    project = Project.create(root)
    seq = import_frames(project, root / "clip")
    return project, seq.id, gts


def frame_ids(project: Project, seq_id: int) -> list[int]:
    return [f.image_id for f in project.sequences.frames(seq_id)]


def start_track(project: Project, seq_id: int, index: int, mask: np.ndarray, label: str = "horse") -> int:
    """A track whose keyframe on frame `index` is `mask`."""
    lab = project.ensure_label(label)
    track = project.tracks.create(seq_id, lab.id)
    project.tracks.set_keyframe(track.id, frame_ids(project, seq_id)[index], masks.encode(mask))
    return track.id


def track_masks(project: Project, track_id: int) -> dict[int, tuple[str, np.ndarray | None, float]]:
    """frame index -> (kind, mask, updated_at) of the track."""
    out = {}
    for state in project.tracks.frames(track_id).values():
        if state.annotation_id is None:
            out[state.frame_index] = (state.kind, None, 0.0)
            continue
        ann = project.annotation(state.annotation_id)
        out[state.frame_index] = (state.kind, masks.decode(ann.rle), ann.updated_at)
    return out
