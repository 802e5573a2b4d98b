"""The background inference thread between the GUI (or any caller) and a segmentation backend.

API (all methods return at once; nothing waits for inference on the caller's thread):

    worker = InferenceWorker(backend, on_notice=print, on_progress=show)  # show(done, total)
    worker.submit(request, on_result, on_error)      # on_result(request, candidate) / on_error(request, exc)
    worker.segment_everything(image, labels, on_result, on_error)   # on_result(image, [candidates])
    worker.prefetch(*images)                         # encode in the background, lowest priority
    worker.set_backend(backend_or_factory, on_ready, on_error)      # a factory runs on the worker thread
    worker.shutdown()

Rules:
- Callbacks run on the worker thread (the GUI re-emits them as Qt signals); keep them short. They
  are invoked while the worker holds its lock, so a result is never delivered after a newer request
  for the same object was submitted: the newest request for an object supersedes older ones, which
  are dropped if still queued and discarded when they finish.
- Priority: backend switches, then object requests (oldest object first), then segment-everything,
  then follow-up work for the answers just delivered (the backend's optional
  `prepare_next(candidate)`, e.g. SEEM's memory stream for the object's next round; skipped once a
  newer request for that object arrives), then prefetch (newest first).
- Prefetch progress: `on_progress(done, total)` after every queued, finished or dropped prefetch
  encode; `total` counts the encodes queued since the prefetch queue was last empty, and
  `(0, 0)` says it is empty again (the batch is finished). `prefetch_progress()` reads it.
- A CUDA out-of-memory error is retried at half the input size (the backend's `reduce_input()`
  when it has one, else a half-size image), then on the CPU (when the backend offers `on_cpu()`);
  each fallback is announced through `on_notice(message)`.
- Qt-free.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import cv2

from seem_annotator.engine.types import Candidate, DecodeRequest, ImageInput, SegmentationBackend
from seem_annotator.errors import DeviceError

log = logging.getLogger(__name__)

ResultCallback = Callable[[DecodeRequest, Candidate], None]
ProgressCallback = Callable[[int, int], None]
ErrorCallback = Callable[[Any, BaseException], None]
EverythingCallback = Callable[[ImageInput, list[Candidate]], None]
BackendSource = SegmentationBackend | Callable[[], SegmentationBackend]

_MAX_PREFETCH = 8
_EVERYTHING = "\0everything"  # object-id namespace of segment-everything jobs (one per image)


@dataclass
class _Job:
    key: str  # object id (or _EVERYTHING + image key)
    seq: int
    run: Callable[[], Any]
    deliver: Callable[[Any], None]
    fail: Callable[[BaseException], None]


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an exception is a GPU out-of-memory error (torch's class or its message)."""
    torch = sys.modules.get("torch")  # never import torch here: without it there is no torch OOM
    oom_type = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def downscaled(image: ImageInput, factor: float = 0.5) -> ImageInput:
    """The same image with its pixels shrunk by `factor` (masks still come back at full size)."""
    h, w = image.pixels.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    pixels = cv2.resize(image.pixels, size, interpolation=cv2.INTER_AREA)
    return ImageInput(key=f"{image.key}@{factor:g}", pixels=pixels, full_size=image.full_size)


class InferenceWorker:
    """One background thread running backend calls in priority order (see module docstring)."""

    def __init__(self, backend: SegmentationBackend | None = None,
                 on_notice: Callable[[str], None] | None = None, name: str = "seem-annotator-inference",
                 on_progress: ProgressCallback | None = None) -> None:
        self._backend = backend
        self._on_notice = on_notice
        self._on_progress = on_progress
        self._encodes_done = 0  # prefetch encodes finished (or failed) in the current batch
        self._encodes_total = 0  # prefetch encodes queued in the current batch
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._switches: deque[_Job] = deque()
        self._objects: OrderedDict[str, _Job] = OrderedDict()  # pending, oldest object first
        self._prefetch: OrderedDict[str, ImageInput] = OrderedDict()  # newest last
        self._followups: OrderedDict[str, _Job] = OrderedDict()  # per object, after its answer
        self._latest: dict[str, int] = {}
        self._seq = 0
        self._busy = False
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # -- public API ----------------------------------------------------------------------------

    @property
    def backend(self) -> SegmentationBackend | None:
        """The backend requests run on now (None until one is set)."""
        return self._backend

    def submit(self, request: DecodeRequest, on_result: ResultCallback, on_error: ErrorCallback) -> int:
        """Queue one round; supersedes any older request for `request.object_id`. Returns its ticket."""
        def deliver(cand: Candidate) -> None:
            on_result(request, cand)
            self._follow_up(request.object_id, cand)

        return self._enqueue(request.object_id,
                             lambda: self._predict(request),
                             deliver,
                             lambda exc: on_error(request, exc))

    def segment_everything(self, image: ImageInput, labels: tuple[str, ...], on_result: EverythingCallback,
                           on_error: ErrorCallback) -> int:
        """Queue a segment-everything pass (a newer one for the same image supersedes it)."""
        return self._enqueue(_EVERYTHING + image.key,
                             lambda: self._require_backend().segment_everything(image, labels),
                             lambda cands: on_result(image, cands),
                             lambda exc: on_error(image, exc))

    def cancel(self, object_id: str) -> None:
        """Drop the queued request for an object and discard one that is running."""
        with self._lock:
            self._objects.pop(object_id, None)
            self._seq += 1
            self._latest[object_id] = self._seq

    def prefetch(self, *images: ImageInput) -> None:
        """Encode images in the background when nothing more urgent is waiting (errors ignored),
        the last given first. They are queued together: the worker cannot start on the first
        before the others are queued, so their order never depends on when its thread wakes."""
        with self._wake:
            self._check_open()
            for image in images:
                if self._prefetch.pop(image.key, None) is None:
                    self._encodes_total += 1
                self._prefetch[image.key] = image
            while len(self._prefetch) > _MAX_PREFETCH:
                self._prefetch.popitem(last=False)
                self._encodes_total -= 1
            self._wake.notify()
        self._report_progress()

    def prefetch_progress(self) -> tuple[int, int]:
        """(done, total) prefetch encodes of the current batch; (0, 0) when none is queued or running."""
        with self._lock:
            return self._encodes_done, self._encodes_total

    def set_backend(self, source: BackendSource, on_ready: Callable[[SegmentationBackend], None] | None = None,
                    on_error: Callable[[BaseException], None] | None = None) -> None:
        """Switch backends. `source` is a backend or a zero-argument factory (e.g. loading a
        checkpoint), which runs on the worker thread before any other queued work."""
        def build() -> SegmentationBackend:
            backend = source() if callable(source) and not hasattr(source, "predict") else source
            self._backend = backend
            return backend

        job = _Job("\0backend", 0, build, on_ready or (lambda _b: None),
                   on_error or (lambda exc: self._notice(f"could not switch backend: {exc}")))
        with self._wake:
            self._check_open()
            self._switches.append(job)
            self._encodes_total -= len(self._prefetch)
            self._prefetch.clear()  # features of the old backend are of no use to the new one
            self._followups.clear()
            self._settle_progress()
            self._wake.notify()
        self._report_progress()

    def pending(self) -> int:
        """Queued jobs (not counting prefetch) plus the one running."""
        with self._lock:
            return len(self._switches) + len(self._objects) + int(self._busy)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued or running (prefetch included); for tests and scripts."""
        with self._wake:
            return self._wake.wait_for(
                lambda: self._stopped or not (self._busy or self._switches or self._objects or self._followups
                                              or self._prefetch),
                timeout)

    def shutdown(self, wait: bool = True, timeout: float | None = 10.0) -> None:
        """Stop the thread; queued work is dropped and nothing more is delivered."""
        with self._wake:
            self._stopped = True
            self._switches.clear()
            self._objects.clear()
            self._prefetch.clear()
            self._followups.clear()
            self._encodes_done = self._encodes_total = 0
            self._wake.notify_all()
        if wait and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # -- internals -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._stopped:
            raise RuntimeError("the inference worker has been shut down")

    def _enqueue(self, key: str, run: Callable[[], Any], deliver: Callable[[Any], None],
                 fail: Callable[[BaseException], None]) -> int:
        with self._wake:
            self._check_open()
            self._seq += 1
            self._latest[key] = self._seq
            self._objects.pop(key, None)  # a queued older request for this object is dropped
            self._followups.pop(key, None)  # and what was prepared for it is no longer wanted
            self._objects[key] = _Job(key, self._seq, run, deliver, fail)
            self._wake.notify()
            return self._seq

    def _follow_up(self, key: str, candidate: Candidate) -> None:
        """Queue the backend's preparation for the object's next round (called with the lock held,
        right after the answer was delivered)."""
        backend = self._backend
        prepare = getattr(backend, "prepare_next", None)
        if not callable(prepare) or candidate.memory is None:
            return

        def run() -> None:
            try:
                prepare(candidate)
            except Exception as exc:  # only a head start is lost; the next round computes it itself
                log.info("preparing the next round of %s failed: %s", key, exc)

        self._followups.pop(key, None)
        self._followups[key] = _Job(key, self._latest.get(key, 0), run, lambda _v: None, lambda _e: None)
        self._wake.notify()

    def _settle_progress(self) -> None:
        """Start a new batch once nothing is queued or encoding (call with the lock held)."""
        if not self._prefetch and self._encodes_done >= self._encodes_total:
            self._encodes_done = self._encodes_total = 0

    def _report_progress(self) -> None:
        if self._on_progress is None:
            return
        # Reports come from the caller's thread (prefetch) and the worker's: reading and reporting
        # under the lock keeps them in order, so a stale count never arrives after the final (0, 0).
        with self._lock:
            try:
                self._on_progress(self._encodes_done, self._encodes_total)
            except Exception:  # a faulty listener must not kill the worker (or the caller)
                log.exception("on_progress callback failed")

    def _notice(self, message: str) -> None:
        log.warning(message)
        if self._on_notice is not None:
            try:
                self._on_notice(message)
            except Exception:  # a faulty listener must not kill the worker
                log.exception("on_notice callback failed")

    def _require_backend(self) -> SegmentationBackend:
        if self._backend is None:
            raise DeviceError("no segmentation backend is loaded yet")
        return self._backend

    def _next(self) -> tuple[_Job | None, ImageInput | None]:
        """Wait for work; returns (job, None), (None, prefetch image) or (None, None) on shutdown."""
        with self._wake:
            while True:
                if self._stopped:
                    return None, None
                if self._switches:
                    job = self._switches.popleft()
                elif self._objects:
                    everything = [k for k in self._objects if k.startswith(_EVERYTHING)]
                    interactive = [k for k in self._objects if not k.startswith(_EVERYTHING)]
                    job = self._objects.pop((interactive or everything)[0])
                elif self._followups:
                    job = self._followups.popitem(last=True)[1]
                    if self._latest.get(job.key) != job.seq:
                        continue  # the object has moved on: a newer request came or was cancelled
                elif self._prefetch:
                    _key, image = self._prefetch.popitem(last=True)
                    self._busy = True
                    return None, image
                else:
                    self._wake.notify_all()  # wake wait_idle()
                    self._wake.wait()
                    continue
                self._busy = True
                return job, None

    def _loop(self) -> None:
        while True:
            job, image = self._next()
            if job is None and image is None:
                return
            try:
                if image is not None:
                    self._run_prefetch(image)
                else:
                    self._run_job(job)
            finally:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()

    def _run_prefetch(self, image: ImageInput) -> None:
        backend = self._backend
        try:
            if backend is not None:
                backend.encode(image)
        except Exception as exc:  # the request that needs this image will report it properly
            log.info("prefetch of %s failed: %s", image.key, exc)
        with self._lock:
            if self._stopped:
                return
            self._encodes_done = min(self._encodes_done + 1, self._encodes_total)
            self._report_progress()  # (done, total); (total, total) when the batch is finished
            if not self._prefetch and self._encodes_done >= self._encodes_total:
                self._settle_progress()
                self._report_progress()  # (0, 0): idle

    def _run_job(self, job: _Job) -> None:
        try:
            value = job.run()
        except Exception as exc:  # every failure goes back to the caller
            error = exc
            self._finish(job, lambda: job.fail(error))
            return
        self._finish(job, lambda: job.deliver(value))

    def _finish(self, job: _Job, call: Callable[[], None]) -> None:
        with self._lock:
            if self._stopped:
                return
            if job.seq and self._latest.get(job.key) != job.seq:
                return  # superseded while running: stale, never shown
            try:
                call()
            except Exception:
                log.exception("inference callback failed")

    def _predict(self, request: DecodeRequest) -> Candidate:
        backend = self._require_backend()
        try:
            return backend.predict(request)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
        _empty_cuda_cache()
        self._notice("The GPU ran out of memory; retrying this image at half resolution.")
        reduce_input = getattr(backend, "reduce_input", None)
        if callable(reduce_input):
            reduce_input()  # the backend halves its own input size (and frees cached features)
            small = replace(request, memory=None)
        else:
            small = replace(request, image=downscaled(request.image), memory=None)
        try:
            return backend.predict(small)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
        _empty_cuda_cache()
        on_cpu = getattr(backend, "on_cpu", None)
        if on_cpu is None or backend.device == "cpu":
            raise DeviceError("the GPU ran out of memory even at half resolution; close other GPU programs "
                              "or switch the backend to the CPU")
        self._notice("The GPU ran out of memory again; switched the model to the CPU (slower).")
        self._backend = on_cpu()
        return self._backend.predict(request)


def _empty_cuda_cache() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
