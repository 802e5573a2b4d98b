"""Propagation end to end on SEEM (the tiny random-weight Focal-T fixture: masks are arbitrary,
but the plumbing is real and the answers deterministic)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import seem_fixture_dirs
from video_support import frame_ids, small_sequence, start_track

from seem_annotator.core import masks
from seem_annotator.core.prompts import TextPrompt
from seem_annotator.engine.predictor import SeemPredictor
from seem_annotator.engine.types import DecodeRequest, ImageInput
from seem_annotator.model.config import load_config
from seem_annotator.model.seem import build_seem
from seem_annotator.video.propagate import PropagationSettings, Propagator


@pytest.fixture(scope="module")
def seem() -> SeemPredictor:
    dirs = [d for d in seem_fixture_dirs() if "focalt" in d.name]
    if not dirs:
        pytest.skip("no Focal-T fixture under ../shared/seem/fixtures")
    torch.manual_seed(0)
    model = build_seem(load_config(dirs[0] / "config.yaml")).eval()
    model.load_state_dict(torch.load(dirs[0] / "state_dict.pt", weights_only=True, map_location="cpu"), strict=True)
    return SeemPredictor(model, name="seem:tiny", short_side=120, class_names=["horse", "sky"])


def _run(tmp_path: Path, seem: SeemPredictor) -> tuple[list, object]:
    project, seq_id, gts = small_sequence(tmp_path, n=4)
    with project:
        track = start_track(project, seq_id, 0, gts[0])
        report = Propagator(project, seem, PropagationSettings(min_confidence=0.0)).run([track])
        states = project.tracks.frames(track)
        out = []
        for image_id in frame_ids(project, seq_id):
            state = states.get(image_id)
            rle = None if state is None or state.annotation_id is None else project.annotation(state.annotation_id).rle
            out.append((state and state.kind, state and state.provenance, rle))
        return out, report


@pytest.mark.slow
def test_seem_propagation_is_deterministic_with_provenance(tmp_path: Path, seem: SeemPredictor):
    first, report = _run(tmp_path / "a", seem)
    second, _ = _run(tmp_path / "b", seem)
    assert first == second
    assert report.frames >= 1
    kinds = [k for k, _, _ in first]
    assert kinds[0] == "keyframe" and kinds[1] == "propagated"
    assert first[1][1]["backend"] == "seem:tiny" and first[1][1]["from_frame"] == 0


def test_text_prompt_starts_a_track_on_seem(tmp_path: Path, seem: SeemPredictor):
    project, seq_id, _ = small_sequence(tmp_path, n=2)
    with project:
        image_id = frame_ids(project, seq_id)[1]
        pixels = project.load_image(image_id)
        prompts = (TextPrompt("horse"),)
        cand = seem.predict(DecodeRequest(image=ImageInput("f1", pixels, pixels.shape[:2]), object_id="o",
                                          round_index=0, prompts=prompts, labels=("horse",)))
        if not cand.mask.any():
            pytest.skip("the random-weight model answered an empty mask")
        session = project.start_session(image_id)
        project.add_round(session.id, prompts, seem.name, masks.encode(cand.mask), cand.labels)
        ann = project.accept_session(session.id, project.ensure_label("horse").id)
        track = project.tracks.start_from_annotation(ann.id)
        assert [s.frame_index for s in project.tracks.frames(track.id).values()] == [1]
