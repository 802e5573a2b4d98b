"""A second process that makes, beside a click's own cut, the cut that click may also need.

A positive click outside the answer may need what it would give alone as a first click (the speck
fallback in classical_rules.py): a second GrabCut on the whole grid, a third of such a click's
time. Whether it is needed is known only once the round's own cut is done, so on a machine with
a second core that cut is started beforehand in this helper and taken when needed. A process, not
a thread: PyMaxflow holds the GIL through a max-flow, so a thread would wait rather than cut.

The helper is `python -m seem_annotator.engine.cut_helper`, spoken to by pickles over its stdin
and stdout (a plain subprocess: multiprocessing's spawn would re-run the caller's main script).
It runs the same code (classical_rules.first_answer) on the same working grid, with its own kept
min-cut graph per image. When it cannot be used (one core, it failed to start, it died, it is too
slow to answer) the caller cuts in its own thread, as without it; a dead helper is replaced at the
next click, a few times at most. It exits when its stdin closes (the caller exited).
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from seem_annotator.engine.classical_cut import CutSettings, WorkingImage

log = logging.getLogger(__name__)

IMAGES = 3  # working grids the caller assumes the helper holds (it keeps one more, see serve)
RESTARTS = 3  # helpers started in one process at most (the first and replacements of dead ones)
WAIT_S = 10.0  # the longest a caller waits for a cut before cutting itself (and dropping the helper)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Ticket:
    """A cut sent to the helper: its job number and what it was asked (to match the later need)."""

    job: int
    pos: np.ndarray
    neg: np.ndarray


class CutHelper:
    """The caller's side: one helper process, started on first use, shared by every backend in
    this process (its grids are keyed by image and grid). Sending and receiving run on two threads
    of their own, so a click never waits on the pipe. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._process: subprocess.Popen | None = None
        self._outbox: queue.Queue | None = None
        self._started = 0
        self._images: OrderedDict[str, None] = OrderedDict()  # the grids the helper holds, LRU
        self._job = 0
        self._done: dict[int, np.ndarray | None] = {}
        self._answered = 0  # the newest job answered
        self._closed = False  # the helper's answers ended (it exited, or is exiting)

    def start(self) -> None:
        """Start the helper now (it takes a moment to import), if it is not running."""
        with self._lock:
            self._ensure_running()

    def submit(self, token: str, image: WorkingImage, pos: np.ndarray, neg: np.ndarray, s: CutSettings
               ) -> Ticket | None:
        """Start first_answer(image, pos, neg, s) in the helper. `token` names the image and its
        grid (the same token, the same grid). None when the helper cannot take it."""
        with self._lock:
            if not self._ensure_running():
                return None
            if token in self._images:
                self._images.move_to_end(token)
            else:
                self._outbox.put(("image", token, image.bgr, image.texture(), image.neighbours))
                self._images[token] = None
                while len(self._images) > IMAGES:
                    self._images.popitem(last=False)
            self._job += 1
            self._outbox.put(("cut", self._job, token, np.packbits(pos), np.packbits(neg), pos.shape, s))
            return Ticket(self._job, pos, neg)

    def take(self, ticket: Ticket, timeout: float = WAIT_S) -> np.ndarray | None:
        """The answer to a submitted cut: bool (h, w), or None when the helper did not give one."""
        with self._lock:
            process = self._process
            # `_closed`, not only poll(): its pipe closes as it dies, a moment before it can be reaped,
            # and no one would wake this wait again.
            arrived = self._lock.wait_for(lambda: ticket.job <= self._answered or self._process is not process
                                          or process is None or self._closed or process.poll() is not None,
                                          timeout)
            if ticket.job not in self._done:
                if ticket.job > self._answered and process is not None and process is self._process:
                    self._drop("it did not answer in time" if not arrived else "it stopped")
                return None
            answer = self._done.pop(ticket.job)
            for job in [j for j in self._done if j < ticket.job]:
                del self._done[job]  # answers nobody took before this one
            return answer

    def close(self) -> None:
        with self._lock:
            self._drop(None)

    # -- internals (hold _lock) ---------------------------------------------------------------

    def _ensure_running(self) -> bool:
        if self._process is not None and self._process.poll() is None and not self._closed:
            return True
        if self._process is not None:
            self._drop("it exited")
        if self._started >= RESTARTS:
            return False
        self._started += 1
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        try:
            process = subprocess.Popen([sys.executable, "-m", "seem_annotator.engine.cut_helper"],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        except OSError as error:
            log.warning("The second-core cut helper could not start (%s); cutting in one process.", error)
            return False
        self._process, self._outbox = process, queue.Queue()
        self._images.clear()
        self._answered = self._job  # the new helper answers only what is sent from now on
        self._closed = False
        threading.Thread(target=self._write, args=(process, self._outbox), name="cut-helper-send", daemon=True).start()
        threading.Thread(target=self._read, args=(process,), name="cut-helper-receive", daemon=True).start()
        return True

    def _write(self, process: subprocess.Popen, outbox: queue.Queue) -> None:
        while True:
            message = outbox.get()
            if message is None:
                break
            try:
                pickle.dump(message, process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                process.stdin.flush()
            except (OSError, ValueError):
                break
        try:
            process.stdin.close()
        except OSError:
            pass

    def _read(self, process: subprocess.Popen) -> None:
        while True:
            try:
                job, bits, shape = pickle.load(process.stdout)
            except (EOFError, OSError, pickle.UnpicklingError, ValueError):
                break
            answer = None if bits is None else unpack(bits, shape)
            with self._lock:
                if process is self._process:
                    self._done[job] = answer
                    self._answered = job
                    while len(self._done) > 16:
                        del self._done[min(self._done)]
                self._lock.notify_all()
        with self._lock:
            if process is self._process:
                self._closed = True
            self._lock.notify_all()

    def _drop(self, why: str | None) -> None:
        if why is not None:
            log.warning("The second-core cut helper was dropped: %s; cutting in this process.", why)
        if self._outbox is not None:
            self._outbox.put(None)  # closes its stdin: it exits
        if self._process is not None and why is not None:
            self._process.kill()
        self._process = self._outbox = None
        self._images.clear()
        self._done.clear()
        self._lock.notify_all()


def unpack(bits: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return np.unpackbits(bits, count=shape[0] * shape[1]).reshape(shape).astype(bool)


_shared: CutHelper | None = None
_shared_lock = threading.Lock()


def shared_helper() -> CutHelper:
    """This process's helper (one for all backends)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = CutHelper()
        return _shared


def serve(inbox: IO[bytes], outbox: IO[bytes]) -> None:
    """The helper's loop: working grids by token (one more than the caller counts on, so that each
    one it counts on is here), cuts answered in order, until the inbox closes."""
    from seem_annotator.engine.classical_rules import first_answer
    from seem_annotator.engine.grabcut_kernels import warm_up

    warm_up()  # compiled code loaded before the first cut, not during it
    images: OrderedDict[str, WorkingImage] = OrderedDict()
    while True:
        try:
            message: Any = pickle.load(inbox)
        except (EOFError, OSError):
            return
        if message[0] == "image":
            _, token, bgr, texture, neighbours = message
            images[token] = WorkingImage(bgr, neighbours, texture=texture)
            while len(images) > IMAGES + 1:
                images.popitem(last=False)
            continue
        _, job, token, pos_bits, neg_bits, shape, settings = message
        image = images.get(token)
        bits = None
        if image is not None:
            images.move_to_end(token)
            try:
                bits = np.packbits(first_answer(image, unpack(pos_bits, shape), unpack(neg_bits, shape), settings))
            except Exception:  # noqa: BLE001 - the caller cuts itself on None; the helper stays up
                log.exception("The cut helper failed on a cut")
        try:
            pickle.dump((job, bits, shape), outbox, protocol=pickle.HIGHEST_PROTOCOL)
            outbox.flush()
        except (OSError, ValueError):
            return


if __name__ == "__main__":
    # Pickles travel on the real stdout; anything printed goes to stderr instead.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    serve(sys.stdin.buffer, answers)
