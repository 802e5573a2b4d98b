"""Propagating tracks through a sequence from their keyframes, in a background thread.

Plan: each keyframe of a track fills the frames up to the next keyframe of that track (forward),
down to the previous one (backward), or, with both directions, its half of the gap. Keyframes are
never written (the store refuses too, checked in the same transaction as the write, so a person
correcting a frame while a run is in flight wins). A segment stops early when the object is lost
or its confidence falls below `min_confidence`: that frame is stored flagged for a person. After a
correction, `from_keyframe` re-propagates only the corrected keyframe's segments, which end at the
neighbouring keyframes; other tracks are never touched by a run that does not name them.

Every propagated frame is one committed transaction through the project's store (the one writer),
so a run killed at any moment keeps every frame it finished.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from seem_annotator.core import masks
from seem_annotator.core.project import Project
from seem_annotator.core.tracks import TrackError
from seem_annotator.engine.types import SegmentationBackend
from seem_annotator.video.frames import Frame, FrameCache
from seem_annotator.video.tracker import Anchor, MaskTracker

Progress = Callable[[int, int], None]
FORWARD, BACKWARD = "forward", "backward"


@dataclass
class PropagationSettings:
    min_confidence: float = 0.5  # below this a frame is flagged and its segment stops
    forward: bool = True
    backward: bool = False
    max_side: int = 1024  # model proxy of a frame
    cache_frames: int = 8
    seed: int = 0


@dataclass
class Segment:
    """Frames one keyframe fills, in propagation order."""

    track_id: int
    anchor: int  # frame index of the keyframe
    indices: list[int]
    direction: str


@dataclass
class TrackOutcome:
    track_id: int
    written: int = 0
    flagged: list[int] = field(default_factory=list)  # frame indices left for a person
    stops: list[str] = field(default_factory=list)


@dataclass
class PropagationReport:
    tracks: dict[int, TrackOutcome]
    cancelled: bool = False
    frames: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = []
        for t in self.tracks.values():
            flagged = f", flagged for review: frames {', '.join(map(str, t.flagged))}" if t.flagged else ""
            out.append(f"track {t.track_id}: {t.written} frames propagated{flagged}")
            out += [f"  {s}" for s in t.stops]
        rate = f" ({self.frames / self.seconds:.1f} frames/s)" if self.seconds > 0 and self.frames else ""
        out.append(("cancelled after " if self.cancelled else "done: ") + f"{self.frames} frames{rate}")
        return out


def plan_segments(track_id: int, keyframes: Sequence[int], count: int, forward: bool, backward: bool,
                  from_keyframe: int | None = None) -> list[Segment]:
    """The segments that fill a track of `count` frames from its keyframe indices."""
    keys = sorted(set(keyframes))
    segments: list[Segment] = []
    if not keys:
        return segments
    if backward and keys[0] > 0:
        segments.append(Segment(track_id, keys[0], list(range(keys[0] - 1, -1, -1)), BACKWARD))
    for left, right in zip(keys, keys[1:]):
        gap = list(range(left + 1, right))
        if not gap:
            continue
        split = (len(gap) + 1) // 2 if (forward and backward) else (len(gap) if forward else 0)
        if split:
            segments.append(Segment(track_id, left, gap[:split], FORWARD))
        if len(gap) > split:
            segments.append(Segment(track_id, right, gap[split:][::-1], BACKWARD))
    if forward and keys[-1] < count - 1:
        segments.append(Segment(track_id, keys[-1], list(range(keys[-1] + 1, count)), FORWARD))
    if from_keyframe is not None:
        segments = [s for s in segments if s.anchor == from_keyframe]
    return segments


class PropagationJob:
    """A run in its background thread: `cancel()`, `done()`, `result()` (the report)."""

    def __init__(self, future: Future, cancel_event: threading.Event, executor: ThreadPoolExecutor) -> None:
        self._future = future
        self._cancel = cancel_event
        self._executor = executor

    def cancel(self) -> None:
        """Stop after the frame being computed (its result is still stored)."""
        self._cancel.set()

    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout: float | None = None) -> PropagationReport:
        try:
            return self._future.result(timeout)
        finally:
            if self._future.done():
                self._executor.shutdown(wait=False)


class Propagator:
    """Propagates tracks of one project with one backend."""

    def __init__(self, project: Project, backend: SegmentationBackend,
                 settings: PropagationSettings | None = None) -> None:
        self.project = project
        self.backend = backend
        self.settings = settings or PropagationSettings()
        self.cache = FrameCache(self.settings.cache_frames, self.settings.max_side)

    def plan(self, track_id: int, from_keyframe: int | None = None) -> list[Segment]:
        track = self.project.tracks.get(track_id)
        frames = self.project.sequences.frames(track.sequence_id)
        states = self.project.tracks.frames(track.id)
        keys = [s.frame_index for s in states.values() if s.is_keyframe]
        if not keys:
            raise TrackError(f"Track {track.id} has no keyframe yet; mark the object on one frame first.")
        if from_keyframe is not None and from_keyframe not in keys:
            raise TrackError(f"Frame {from_keyframe} is not a keyframe of track {track.id}.")
        return plan_segments(track.id, keys, len(frames), self.settings.forward, self.settings.backward,
                             from_keyframe)

    def start(self, track_ids: Sequence[int], from_keyframe: int | None = None,
              progress: Progress | None = None) -> PropagationJob:
        """Run `run` in a background thread; returns at once."""
        cancel = threading.Event()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="propagate")
        future = executor.submit(self.run, list(track_ids), from_keyframe, progress, cancel)
        return PropagationJob(future, cancel, executor)

    def run(self, track_ids: Sequence[int], from_keyframe: int | None = None, progress: Progress | None = None,
            cancel: threading.Event | None = None) -> PropagationReport:
        """Propagate every named track (in order) from its keyframes; blocking."""
        t0 = time.perf_counter()
        plans, skipped = [], {}
        for tid in track_ids:
            try:
                plans.append((tid, self.plan(tid, from_keyframe)))
            except TrackError as exc:
                if len(track_ids) == 1:
                    raise
                skipped[tid] = str(exc)  # one track without a keyframe must not stop the others
        total = sum(len(s.indices) for _, segs in plans for s in segs)
        report = PropagationReport({tid: TrackOutcome(tid) for tid in track_ids})
        for tid, why in skipped.items():
            report.tracks[tid].stops.append(f"skipped: {why}")
        done = 0
        if progress:
            progress(0, total)
        for tid, segments in plans:
            track = self.project.tracks.get(tid)
            frames = self.project.sequences.frames(track.sequence_id)
            tracker = MaskTracker(self.backend, (self.project.label(track.label_id).name,))
            for seg in segments:
                before = done
                for visited, index in enumerate(seg.indices, 1):
                    if cancel is not None and cancel.is_set():
                        report.cancelled = True
                        break
                    going = self._step(tracker, track.id, frames, seg, index, report.tracks[tid])
                    done = before + visited
                    if progress:
                        progress(done, total)
                    if not going:
                        break
                if report.cancelled:
                    break
                done = before + len(seg.indices)  # frames a stop left unvisited count as done
                if progress:
                    progress(done, total)
            if report.cancelled:
                break
        report.frames = sum(t.written for t in report.tracks.values())
        report.seconds = time.perf_counter() - t0
        return report

    # -- one frame -------------------------------------------------------------------------------

    def _frame(self, image_id: int) -> Frame:
        record = self.project.image(image_id)
        return self.cache.get(record.sha256 or f"image:{image_id}", lambda: self.project.image_path(image_id))

    def _step(self, tracker: MaskTracker, track_id: int, frames: list, seg: Segment, index: int,
              outcome: TrackOutcome) -> bool:
        """Propagate onto frame `index` from its neighbour on the keyframe's side; False = stop."""
        prev_index = index - 1 if seg.direction == FORWARD else index + 1
        tracks = self.project.tracks
        prev_state = tracks.frame(track_id, frames[prev_index].image_id)
        anchor_state = tracks.frame(track_id, frames[seg.anchor].image_id)
        if prev_state is None or prev_state.annotation_id is None or anchor_state is None:
            outcome.stops.append(f"{seg.direction} from frame {seg.anchor}: nothing to carry at frame {prev_index}")
            return False
        prev_mask = masks.decode(self.project.annotation(prev_state.annotation_id).rle)
        anchor_rle = self.project.annotation(anchor_state.annotation_id).rle
        prev_frame = self._frame(frames[prev_index].image_id)
        cur_frame = self._frame(frames[index].image_id)
        anchor_frame = self._frame(frames[seg.anchor].image_id)
        result = tracker.step(prev_frame, cur_frame, prev_mask,
                              Anchor(frames[seg.anchor].image_id, anchor_rle, anchor_frame.image),
                              object_id=f"track:{track_id}", seed=self.settings.seed)
        lost = not result.mask.any()
        flagged = lost or result.confidence < self.settings.min_confidence
        provenance = {"from_frame": seg.anchor, "from_image": frames[seg.anchor].image_id,
                      "backend": getattr(self.backend, "name", type(self.backend).__name__),
                      "direction": seg.direction, "score": round(result.score, 4),
                      "consistency": round(result.consistency, 4)}
        written = self.project.tracks.write_propagated(
            track_id, frames[index].image_id, None if lost else masks.encode(result.mask), provenance,
            result.confidence, flagged)
        if not written:
            outcome.stops.append(f"{seg.direction} from frame {seg.anchor}: stopped at keyframe {index}")
            return False
        outcome.written += 1
        if flagged:
            outcome.flagged.append(index)
            why = "object lost" if lost else f"confidence {result.confidence:.2f} < {self.settings.min_confidence}"
            outcome.stops.append(f"{seg.direction} from frame {seg.anchor}: stopped at frame {index} ({why})")
            return False
        return True
