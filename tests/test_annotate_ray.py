"""The Ray engine on a local Ray instance with 2 CPU workers and the shared tiny fixture model:
same results as the local engine, a worker killed mid-run, shipped images and weights, clear
errors for an unreachable cluster and a missing Ray."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from seem_annotator.annotate.annotator import AnnotatorSpec
from seem_annotator.annotate.executor import LocalExecutor, make_executor
from seem_annotator.annotate.settings import RunSettings
from seem_annotator.annotate.work import ImageTask
from seem_annotator.errors import UserError
from tests.conftest import DATA, SHARED

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install seem-annotator[ray])")
from seem_annotator.annotate.ray_executor import RayExecutor, check_reachable  # noqa: E402

FIXTURE = SHARED / "seem" / "fixtures" / "tiny_focalt_v1"
IMAGES = DATA / "COCO_MVal_subset" / "img"
pytestmark = pytest.mark.skipif(not (FIXTURE / "state_dict.pt").is_file() or not IMAGES.is_dir(),
                                reason="shared fixture model or COCO subset missing")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def make_spec() -> AnnotatorSpec:
    settings = RunSettings(modes=("everything", "text"), labels=("person", "dog", "car"),
                           model=str(FIXTURE / "config.yaml"))
    return AnnotatorSpec(str(FIXTURE / "config.yaml"), str(FIXTURE / "state_dict.pt"), settings, threads=1)


def make_tasks(spec: AnnotatorSpec, paths: list[Path]) -> list[ImageTask]:
    return [ImageTask(i + 1, p.name, str(p), spec.settings.image_seed(i + 1)) for i, p in enumerate(paths)]


@pytest.fixture(scope="module")
def reference():
    spec = make_spec()
    paths = sorted(IMAGES.iterdir())[:24]
    tasks = make_tasks(spec, paths)
    return spec, tasks, {r.image_id: r for r in LocalExecutor().map(spec, tasks)}


def same(a, b) -> bool:
    return a.proposals == b.proposals and a.error == b.error


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def map_worker_pids() -> list[int]:
    pids = []
    for pid in descendants(os.getpid()):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::MapWorker"):
                pids.append(pid)
        except OSError:
            pass
    return pids


@pytest.mark.slow
def test_ray_gives_the_local_results(local_ray, reference):
    spec, tasks, local = reference
    executor = RayExecutor(workers=2)
    got = [r.image_id for r in executor.map(spec, tasks)]
    assert sorted(got) == sorted(local)  # every image once
    results = {r.image_id: r for r in executor.map(spec, tasks[:6])}
    executor.close()
    assert ray.is_initialized()  # the test's instance is left running
    assert all(same(results[k], local[k]) for k in results)
    assert sum(len(r.proposals) for r in local.values()) > 0


@pytest.mark.slow
def test_a_killed_worker_is_restarted_and_its_images_redone(local_ray, reference):
    spec, tasks, local = reference
    executor = RayExecutor(workers=2, batch_size=2)
    results = {}
    killed = None
    for result in executor.map(spec, tasks):
        assert result.image_id not in results
        results[result.image_id] = result
        if killed is None:
            pids = map_worker_pids()
            assert pids
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)
    executor.close()
    assert killed is not None
    assert sorted(results) == sorted(local)
    assert all(same(results[k], local[k]) for k in local)


@pytest.mark.slow
def test_shipped_images_and_weights_reach_workers_that_cannot_read_them(local_ray, reference, tmp_path):
    spec, tasks, local = reference
    # Tasks whose paths no worker can open: only the driver's bytes can make these results.
    shipped = [ImageTask(t.image_id, t.file_name, str(tmp_path / "gone" / t.file_name), t.seed,
                         Path(t.path).read_bytes()) for t in tasks[:6]]
    executor = RayExecutor(workers=2, ship_images=True, ship_model=True)
    results = {r.image_id: r for r in executor.map(spec, shipped)}
    executor.close()
    assert sorted(results) == [t.image_id for t in shipped]
    assert all(same(results[k], local[k]) for k in results)
    # Driver-only files: read by the driver (ship_images) from paths the workers see as missing.
    unreadable = [ImageTask(t.image_id, t.file_name, str(tmp_path / "gone" / t.file_name), t.seed)
                  for t in tasks[:2]]
    results = {r.image_id: r for r in RayExecutor(workers=1).map(spec, unreadable)}
    assert all(r.error for r in results.values())  # without shipping, the worker cannot read them


def test_an_unreachable_address_is_one_clear_error():
    start = time.monotonic()
    with pytest.raises(UserError, match="Cannot reach the Ray cluster at 127.0.0.1:1"):
        check_reachable("127.0.0.1:1")
    with pytest.raises(UserError, match="Cannot reach the Ray cluster at ray://127.0.0.1:1"):
        check_reachable("ray://127.0.0.1:1")
    with pytest.raises(UserError, match="is not host:port"):
        RayExecutor(address="nowhere")
    assert time.monotonic() - start < 15


def test_missing_ray_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(UserError, match=r"pip install seem-annotator\[ray\]"):
        make_executor("ray", workers=2)
