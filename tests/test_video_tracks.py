"""Tracks in the store: started from any prompt on any frame, keyframes vs propagated masks with
provenance, keyframes never overwritten, person's edits become keyframes, undo per frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from video_support import frame_ids, small_sequence, start_track

from seem_annotator.core import masks
from seem_annotator.core.prompts import PointPrompt, PolygonPrompt
from seem_annotator.core.tracks import KEYFRAME, PROPAGATED, TrackError
from seem_annotator.engine.classical_backend import ClassicalBackend
from seem_annotator.engine.types import DecodeRequest, ImageInput


def _accept(project, image_id: int, prompts: tuple, label: str) -> int:
    """An annotation made the way the app makes one: a session round from the backend, accepted."""
    backend = ClassicalBackend()
    pixels = project.load_image(image_id)
    cand = backend.predict(DecodeRequest(image=ImageInput(f"img{image_id}", pixels, pixels.shape[:2]),
                                         object_id="o", round_index=0, prompts=prompts))
    assert cand.mask.any()
    session = project.start_session(image_id)
    project.add_round(session.id, prompts, backend.name, masks.encode(cand.mask), [])
    return project.accept_session(session.id, project.ensure_label(label).id).id


@pytest.mark.parametrize("prompts", [
    (PointPrompt(100.5, 60.5),),
    (PolygonPrompt(((80.0, 40.0), (130.0, 40.0), (130.0, 85.0), (80.0, 85.0))),),
], ids=["click", "polygon"])
def test_any_prompt_on_any_frame_starts_a_track(tmp_path: Path, prompts):
    project, seq_id, _ = small_sequence(tmp_path, n=4)
    with project:
        image_id = frame_ids(project, seq_id)[2]  # not the first frame
        ann_id = _accept(project, image_id, prompts, "horse")
        track = project.tracks.start_from_annotation(ann_id)
        assert track.sequence_id == seq_id and track.label_id == project.label_by_name("horse").id
        (state,) = project.tracks.frames(track.id).values()
        assert (state.frame_index, state.kind, state.annotation_id) == (2, KEYFRAME, ann_id)
        assert project.tracks.track_of_annotation(ann_id) == track.id


def test_tracks_only_on_frames_of_their_sequence(tmp_path: Path):
    project, seq_id, gts = small_sequence(tmp_path, n=3)
    with project:
        photo = tmp_path / "proj" / "photo.png"
        import cv2

        cv2.imwrite(str(photo), np.zeros((10, 10, 3), np.uint8))
        project.rescan()
        lab = project.ensure_label("x")
        track = project.tracks.create(seq_id, lab.id)
        with pytest.raises(TrackError, match="not a frame"):
            project.tracks.set_keyframe(track.id, project.image_by_name("photo.png").id,
                                        masks.encode(np.ones((10, 10), bool)))
        with pytest.raises(TrackError, match="empty"):
            project.tracks.set_keyframe(track.id, frame_ids(project, seq_id)[0], masks.encode(gts[0] & False))


def test_keyframes_never_overwritten_and_edits_become_keyframes(tmp_path: Path):
    project, seq_id, gts = small_sequence(tmp_path, n=3)
    with project:
        ids = frame_ids(project, seq_id)
        track = start_track(project, seq_id, 0, gts[0])
        prov = {"from_frame": 0, "backend": "test"}
        assert not project.tracks.write_propagated(track, ids[0], masks.encode(gts[1]), prov, 0.9, False)
        assert project.tracks.write_propagated(track, ids[1], masks.encode(gts[1]), prov, 0.9, False)
        state = project.tracks.frames(track)[ids[1]]
        assert state.kind == PROPAGATED and state.provenance == prov and state.confidence == pytest.approx(0.9)
        ann = project.annotation(state.annotation_id)
        assert ann.source["track_id"] == track and ann.source["propagated"] == prov
        # A person's brush edit of a propagated mask makes it theirs: a keyframe, never overwritten.
        edited = gts[1].copy()
        edited[:10, :10] = True
        project.set_mask(state.annotation_id, masks.encode(edited))
        assert project.tracks.frames(track)[ids[1]].kind == KEYFRAME
        assert not project.tracks.write_propagated(track, ids[1], masks.encode(gts[2]), prov, 0.9, False)
        # Undo of the edit: the propagated mask again, which propagation may replace.
        project.undo(ids[1])
        assert project.tracks.frames(track)[ids[1]].kind == PROPAGATED


def test_propagated_frames_are_undoable(tmp_path: Path):
    project, seq_id, gts = small_sequence(tmp_path, n=3)
    with project:
        ids = frame_ids(project, seq_id)
        track = start_track(project, seq_id, 0, gts[0])
        prov = {"from_frame": 0, "backend": "test"}
        project.tracks.write_propagated(track, ids[1], masks.encode(gts[1]), prov, 0.8, False)
        first = project.tracks.frames(track)[ids[1]].annotation_id
        project.tracks.write_propagated(track, ids[1], masks.encode(gts[2]), prov, 0.3, True)
        state = project.tracks.frames(track)[ids[1]]
        assert state.annotation_id == first and state.flagged  # re-propagation keeps the annotation id
        assert project.history(ids[1])[-2:] == [("propagate", False), ("propagate", False)]
        project.undo(ids[1])
        state = project.tracks.frames(track)[ids[1]]
        assert not state.flagged and np.array_equal(masks.decode(project.annotation(first).rle), gts[1])
        project.undo(ids[1])
        assert ids[1] not in project.tracks.frames(track) and project.annotations(ids[1]) == []
        project.redo(ids[1])
        assert project.tracks.frames(track)[ids[1]].annotation_id == first
        # A lost object: a flagged row with no mask.
        project.tracks.write_propagated(track, ids[2], None, prov, 0.0, True)
        lost = project.tracks.frames(track)[ids[2]]
        assert lost.annotation_id is None and lost.flagged


def test_correction_replaces_the_propagated_mask(tmp_path: Path):
    project, seq_id, gts = small_sequence(tmp_path, n=2)
    with project:
        ids = frame_ids(project, seq_id)
        track = start_track(project, seq_id, 0, gts[0])
        project.tracks.write_propagated(track, ids[1], masks.encode(gts[0]), {"from_frame": 0}, 0.7, False)
        fixed = project.tracks.set_keyframe(track, ids[1], masks.encode(gts[1]))
        assert fixed.kind == KEYFRAME and len(project.annotations(ids[1])) == 1
        assert np.array_equal(masks.decode(project.annotation(fixed.annotation_id).rle), gts[1])
        project.undo(ids[1])
        assert project.tracks.frames(track)[ids[1]].kind == PROPAGATED
