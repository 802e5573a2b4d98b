"""Executors: how a run's tasks get through the per-image code (`ImageAnnotator`).

An executor takes the spec and the tasks and yields one `ImageResult` per task, in any order, as
they complete; the consumer may stop early (closing the generator stops the work). The local one
runs a three-stage pipeline on this machine:

    read pool (decode + resize, a few images ahead) -> model thread -> finish pool (RLE) -> results

so that reading the next images and encoding the last one's masks overlap the model, which is
the only stage that must run one at a time. `make_executor("ray", ...)` runs the same per-image
code on a Ray cluster (`ray_executor.py`).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from seem_annotator.annotate.annotator import AnnotatorSpec, ImageAnnotator
from seem_annotator.annotate.work import ImageResult, ImageTask
from seem_annotator.errors import UserError

ENGINES = ("local", "ray")


class Executor(Protocol):
    name: str

    def map(self, spec: AnnotatorSpec, tasks: Sequence[ImageTask]) -> Iterator[ImageResult]:
        """One result per task, in any order, as they complete; stop early by closing the iterator."""
        ...

    def close(self) -> None:
        ...


class LocalExecutor:
    """Threads on this machine. `read_threads` decode ahead (`prefetch` images at most),
    `finish_threads` turn masks into RLEs; the model runs on one thread of its own. `annotator`:
    an already built annotator to use (else built from the spec on first use and kept)."""

    name = "local"

    def __init__(self, read_threads: int = 2, finish_threads: int = 2, prefetch: int = 4,
                 annotator: ImageAnnotator | None = None) -> None:
        self.read_threads = max(1, read_threads)
        self.finish_threads = max(1, finish_threads)
        self.prefetch = max(1, prefetch)
        self._annotator = annotator
        self._identity = annotator.spec.identity() if annotator is not None else None

    def annotator(self, spec: AnnotatorSpec) -> ImageAnnotator:
        """The annotator for `spec` (built once; a different spec builds anew)."""
        identity = spec.identity()
        if self._annotator is None or self._identity != identity:
            self._annotator = spec.build()
            self._identity = identity
        return self._annotator

    def map(self, spec: AnnotatorSpec, tasks: Sequence[ImageTask]) -> Iterator[ImageResult]:
        annotator = self.annotator(spec)
        out: queue.Queue[tuple[str, Any]] = queue.Queue()
        stop = threading.Event()
        reads = ThreadPoolExecutor(self.read_threads, thread_name_prefix="annotate-read")
        finishes = ThreadPoolExecutor(self.finish_threads, thread_name_prefix="annotate-finish")

        def model_loop() -> None:
            pending: deque[Future] = deque()
            todo = iter(tasks)
            try:
                for task in todo:
                    pending.append(reads.submit(annotator.prepare, task))
                    if len(pending) >= self.prefetch:
                        break
                while pending and not stop.is_set():
                    prepared = pending.popleft().result()
                    task = next(todo, None)
                    if task is not None:
                        pending.append(reads.submit(annotator.prepare, task))
                    if isinstance(prepared, ImageResult):
                        out.put(("result", prepared))
                        continue
                    inferred = annotator.infer(prepared)
                    if isinstance(inferred, ImageResult):
                        out.put(("result", inferred))
                        continue
                    # Queued at once, in model order: the consumer waits on each in turn.
                    out.put(("future", finishes.submit(annotator.finish, inferred)))
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
                out.put(("error", exc))
            finally:
                out.put(("end", None))

        thread = threading.Thread(target=model_loop, name="annotate-model", daemon=True)
        thread.start()
        try:
            while True:
                kind, value = out.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                yield value.result() if kind == "future" else value
        finally:
            stop.set()
            thread.join()
            reads.shutdown(wait=True, cancel_futures=True)
            finishes.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self._annotator = None
        self._identity = None


def make_executor(engine: str = "local", **options: Any) -> Executor:
    """The executor for `engine` ("local" or "ray") with its options."""
    if engine == "local":
        return LocalExecutor(**options)
    if engine == "ray":
        try:
            import ray  # noqa: F401
        except ImportError as exc:
            raise UserError("The ray engine needs Ray: pip install seem-annotator[ray]") from exc
        from seem_annotator.annotate.ray_executor import RayExecutor

        return RayExecutor(**options)
    raise UserError(f"Unknown engine {engine!r}; use one of {', '.join(ENGINES)}.")
