"""Propagation through a real sequence on the classical backend: forward/backward, stops at
keyframes and at low confidence, corrections re-propagate only to the next keyframe, a track
added mid-sequence leaves the others alone, cancel and progress, frames decoded once."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from video_support import frame_ids, small_sequence, start_track, track_masks

from seem_annotator.core import masks
from seem_annotator.core.tracks import KEYFRAME, PROPAGATED
from seem_annotator.engine.classical_backend import ClassicalBackend
from seem_annotator.video.metrics import region_j
from seem_annotator.video.propagate import PropagationSettings, Propagator, plan_segments
from seem_annotator.video.tracker import MaskTracker


def _propagator(project, **settings) -> Propagator:
    return Propagator(project, ClassicalBackend(), PropagationSettings(min_confidence=0.0, **settings))


def test_plan_fills_gaps_between_keyframes():
    segs = plan_segments(1, [2, 6], 10, forward=True, backward=False)
    assert [(s.anchor, s.indices) for s in segs] == [(2, [3, 4, 5]), (6, [7, 8, 9])]
    segs = plan_segments(1, [2, 6], 10, forward=False, backward=True)
    assert [(s.anchor, s.indices) for s in segs] == [(2, [1, 0]), (6, [5, 4, 3])]
    segs = plan_segments(1, [2, 6], 10, forward=True, backward=True)
    assert [(s.anchor, s.indices) for s in segs] == [(2, [1, 0]), (2, [3, 4]), (6, [5]), (6, [7, 8, 9])]
    assert [s.anchor for s in plan_segments(1, [2, 6], 10, True, True, from_keyframe=6)] == [6, 6]


def test_forward_beats_the_flow_baseline_and_decodes_each_frame_once(tmp_path: Path):
    project, seq_id, gts = small_sequence(tmp_path, n=8)
    with project:
        track = start_track(project, seq_id, 0, gts[0])
        prop = _propagator(project)
        seen = []
        report = prop.run([track], progress=lambda d, t: seen.append((d, t)))
        got = track_masks(project, track)
        assert sorted(got) == list(range(8)) and report.tracks[track].written == 7
        assert all(got[i][0] == PROPAGATED for i in range(1, 8)) and got[0][0] == KEYFRAME
        state = project.tracks.frames(track)[frame_ids(project, seq_id)[5]]
        assert state.provenance["from_frame"] == 0 and state.provenance["backend"] == "classical"
        assert seen[0] == (0, 7) and seen[-1] == (7, 7)
        assert set(prop.cache.counts.values()) == {1}  # no frame decoded twice
        # The same frames with flow alone (no backend refinement): propagation must do better.
        tracker = MaskTracker(ClassicalBackend())
        frames = [prop._frame(i) for i in frame_ids(project, seq_id)]
        base, base_j = gts[0], []
        for prev, cur, gt in zip(frames, frames[1:], gts[1:]):
            base = tracker.carry(prev, cur, base)
            base_j.append(region_j(base, gt))
        ours = np.mean([region_j(got[i][1], gts[i]) for i in range(1, 8)])
        assert ours > np.mean(base_j) and ours > 0.6


def test_backward_from_last_frame(tmp_path: Path):
    project, seq_id, gts = small_sequence(tmp_path, n=5)
    with project:
        track = start_track(project, seq_id, 4, gts[4])
        _propagator(project, forward=False, backward=True).run([track])
        got = track_masks(project, track)
        assert sorted(got) == [0, 1, 2, 3, 4]
        assert project.tracks.frames(track)[frame_ids(project, seq_id)[0]].provenance["direction"] == "backward"
        assert region_j(got[3][1], gts[3]) > 0.5


def test_stops_at_keyframes_which_stay_untouched(tmp_path: Path):
    project, seq_id, gts = small_sequence(tmp_path, n=7)
    with project:
        ids = frame_ids(project, seq_id)
        track = start_track(project, seq_id, 0, gts[0])
        project.tracks.set_keyframe(track, ids[4], masks.encode(gts[4]))
        before = track_masks(project, track)[4]
        report = _propagator(project).run([track])
        after = track_masks(project, track)
        assert after[4][0] == KEYFRAME and np.array_equal(after[4][1], before[1]) and after[4][2] == before[2]
        assert {i: after[i][0] for i in (1, 2, 3, 5, 6)} == dict.fromkeys((1, 2, 3, 5, 6), PROPAGATED)
        assert project.tracks.frames(track)[ids[5]].provenance["from_frame"] == 4  # re-anchored on keyframe 4
        assert project.tracks.frames(track)[ids[3]].provenance["from_frame"] == 0
        assert report.tracks[track].written == 5


def test_low_confidence_stops_and_flags_the_frame(tmp_path: Path):
    project, seq_id, gts = small_sequence(tmp_path, n=5)
    with project:
        ids = frame_ids(project, seq_id)
        track = start_track(project, seq_id, 0, gts[0])
        prop = Propagator(project, ClassicalBackend(), PropagationSettings(min_confidence=0.999))
        report = prop.run([track])
        states = project.tracks.frames(track)
        assert set(states) == {ids[0], ids[1]}  # stopped at the first frame below the setting
        assert states[ids[1]].flagged and states[ids[1]].confidence < 0.999
        assert report.tracks[track].flagged == [1] and "confidence" in report.tracks[track].stops[0]


def test_correction_repropagates_only_up_to_the_next_keyframe(tmp_path: Path):
    project, seq_id, gts = small_sequence(tmp_path, n=8)
    with project:
        ids = frame_ids(project, seq_id)
        track = start_track(project, seq_id, 0, gts[0])
        project.tracks.set_keyframe(track, ids[5], masks.encode(gts[5]))
        prop = _propagator(project)
        prop.run([track])
        before = track_masks(project, track)
        # A person fixes frame 2 (here: a deliberately different mask), then re-propagates from it.
        fixed = np.zeros_like(gts[2])
        fixed[30:90, 60:160] = True
        project.tracks.set_keyframe(track, ids[2], masks.encode(fixed))
        report = prop.run([track], from_keyframe=2)
        after = track_masks(project, track)
        assert report.tracks[track].written == 2  # frames 3 and 4 only
        assert after[2][0] == KEYFRAME and np.array_equal(after[2][1], fixed)
        for i in (3, 4):
            assert after[i][2] > before[i][2] and project.tracks.frames(track)[ids[i]].provenance["from_frame"] == 2
        for i in (0, 1, 5, 6, 7):  # before the correction, the next keyframe and beyond: untouched
            assert after[i][2] == before[i][2] and np.array_equal(after[i][1], before[i][1])


def test_new_track_mid_sequence_leaves_others_untouched(tmp_path: Path):
    project, seq_id, gts = small_sequence(tmp_path, n=6)
    with project:
        horse = start_track(project, seq_id, 0, gts[0])
        prop = _propagator(project)
        prop.run([horse])
        before = track_masks(project, horse)
        region = np.zeros_like(gts[0])
        region[5:30, 5:50] = True  # a patch of background as a second object
        other = start_track(project, seq_id, 3, region & ~gts[3], label="sky")
        report = prop.run([other])
        after = track_masks(project, horse)
        assert {i: (k, t) for i, (k, _, t) in after.items()} == {i: (k, t) for i, (k, _, t) in before.items()}
        assert sorted(track_masks(project, other)) == [3, 4, 5] and report.tracks[other].written == 2
        # Both at once: one run, several tracks.
        both = Propagator(project, ClassicalBackend(), PropagationSettings(min_confidence=0.0, backward=True))
        report = both.run([horse, other])
        assert sorted(track_masks(project, other)) == list(range(6)) and set(report.tracks) == {horse, other}


def test_background_job_with_cancel(tmp_path: Path):
    project, seq_id, gts = small_sequence(tmp_path, n=8)
    with project:
        track = start_track(project, seq_id, 0, gts[0])
        prop = _propagator(project)
        reached = threading.Event()
        main_thread = threading.get_ident()
        threads = set()

        def progress(done: int, total: int) -> None:
            threads.add(threading.get_ident())
            if done >= 2:
                reached.set()

        job = prop.start([track], progress=progress)
        assert reached.wait(60)
        job.cancel()
        report = job.result(60)
        assert report.cancelled and 2 <= report.frames < 7
        assert main_thread not in threads  # the work ran in the background
        assert len(project.tracks.frames(track)) == report.frames + 1  # every finished frame is stored


def test_cli_propagate(tmp_path: Path, capsys):
    from seem_annotator.cli.main import main

    project, seq_id, gts = small_sequence(tmp_path, n=4)
    with project:
        track = start_track(project, seq_id, 0, gts[0])
        name = project.sequences.get(seq_id).name
    root = str(tmp_path / "proj")
    assert main(["propagate", "--project", root, "--sequence", name, "--track", str(track),
                 "--min-confidence", "0"]) == 0
    assert f"track {track}: 3 frames propagated" in capsys.readouterr().out
    assert main(["propagate", "--project", root, "--sequence", "nope"]) == 2
    assert "No sequence named 'nope'" in capsys.readouterr().err
    assert main(["propagate", "--project", root, "--sequence", name, "--track", "99"]) == 2


@pytest.mark.parametrize("n", [3])
def test_frames_are_cached_between_tracks(tmp_path: Path, n: int):
    project, seq_id, gts = small_sequence(tmp_path, n=n)
    with project:
        a = start_track(project, seq_id, 0, gts[0])
        b = start_track(project, seq_id, 0, gts[0] ^ True, label="background")
        prop = _propagator(project)
        prop.run([a, b])
        assert set(prop.cache.counts.values()) == {1}


def test_a_track_without_keyframe_is_skipped_not_fatal(tmp_path: Path):
    from seem_annotator.core.tracks import TrackError

    project, seq_id, gts = small_sequence(tmp_path, n=3)
    with project:
        good = start_track(project, seq_id, 0, gts[0])
        empty = project.tracks.create(seq_id, project.ensure_label("empty").id).id
        prop = _propagator(project)
        with pytest.raises(TrackError, match="no keyframe"):
            prop.run([empty])
        report = prop.run([good, empty])
        assert report.tracks[good].written == 2 and "no keyframe" in report.tracks[empty].stops[0]
