"""Makes the Ray instance a run starts on this machine end with the run's process (Linux).

`ray.init()` without an address starts GCS and the raylet as children of the driver that the
kernel kills when the driver dies, but the raylet's own children, `DashboardAgent` and
`RuntimeEnvAgent`, watch the raylet and then try to report to the GCS that died with it: after a
SIGKILLed driver they were measured alive for about 60 s. `start(pid)` runs this file as a
separate process (its own session, stdlib only) that polls the driver's process tree and, when
the driver's end of its stdin pipe closes without a "stop" line (the driver died), SIGKILLs every
Ray process of that tree still alive (same pid and start time). `Watchdog.stop()` after a clean
`ray.shutdown()` ends it without killing anything.

    python ray_watchdog.py DRIVER_PID
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

FAST_POLL_S = 0.5  # while the instance starts its agents and workers
SLOW_POLL_S = 5.0  # later: only actors come and go, and they notice a dead raylet by themselves
FAST_PERIOD_S = 20.0


def process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time in clock ticks since boot) of every process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        table[int(entry)] = (int(fields[1]), int(fields[19]))
    return table


def descendants(root: int, table: dict[int, tuple[int, int]]) -> dict[int, int]:
    """pid -> start time of every process below `root` in `table`."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _start) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = {}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = table[child][1]
            todo.append(child)
    return found


def is_ray(pid: int) -> bool:
    """A Ray process: its binary lives in the ray package, or it titles itself ray::NAME."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except OSError:
        return False
    return argv[0].startswith(b"ray::") or any(b"/ray/" in arg for arg in argv[:3])


def kill_survivors(known: dict[int, int]) -> list[int]:
    """SIGKILL the processes of `known` that are still the same processes; their pids."""
    table = process_table()
    killed = []
    for pid, start in known.items():
        if pid in table and table[pid][1] == start:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError:
                pass
    return killed


def watch(driver: int, stream: int) -> int:
    """Remember the driver's tree until `stream` says "stop" (return 0) or closes (kill, return 1)."""
    known: dict[int, int] = {}  # the Ray processes of the driver's tree: pid -> start time
    seen: set[tuple[int, int]] = set()
    waited = 0.0
    buffer = b""
    while True:
        for pid, started in descendants(driver, process_table()).items():
            if (pid, started) not in seen:
                seen.add((pid, started))
                if pid != os.getpid() and is_ray(pid):
                    known[pid] = started
        timeout = FAST_POLL_S if waited < FAST_PERIOD_S else SLOW_POLL_S
        ready, _, _ = select.select([stream], [], [], timeout)
        waited += timeout
        if not ready:
            continue
        chunk = os.read(stream, 64)
        buffer += chunk
        if b"stop" in buffer:
            return 0
        if not chunk:  # the driver is gone: its tree is known, reap what is left of it
            kill_survivors(known)
            return 1


class Watchdog:
    """The running watchdog of one driver; `stop()` ends it quietly."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.stdin is None or self.process.stdin.closed:
            return
        try:
            self.process.stdin.write(b"stop\n")
            self.process.stdin.close()
            self.process.wait(timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()


def start(driver: int | None = None) -> Watchdog | None:
    """Start the watchdog of `driver` (default: this process); None where /proc is missing."""
    if not sys.platform.startswith("linux") or not Path("/proc/self/stat").is_file():
        return None
    try:
        process = subprocess.Popen([sys.executable, "-I", "-S", __file__, str(driver or os.getpid())],
                                   stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True, close_fds=True)
    except OSError:
        return None  # the run goes on; only a SIGKILLed driver would leave Ray's agents behind longer
    return Watchdog(process)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is for the driver, which shuts Ray down itself
    sys.exit(watch(int(sys.argv[1]), sys.stdin.fileno()))
