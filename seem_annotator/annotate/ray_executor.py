"""The Ray engine: a run's images spread over the workers of a Ray cluster with Ray Data.

The tasks become a Ray dataset (one block per batch); `map_batches` runs `AnnotateWorker`, a
callable class, on a fixed pool of actors (`ActorPoolStrategy(size=workers)`), each holding one
built `ImageAnnotator` and running the local engine's pipeline (`LocalExecutor`) over its batch,
so every worker runs exactly the per-image code of a local run. Workers return pickled
`ImageResult`s; the driver yields them as they arrive and the run driver merges them into the
project store, which workers never open.

Fault tolerance is Ray Data's: actors of a pool are restarted when their process dies and the
batch they held is submitted again (its defaults max_restarts=-1, max_task_retries=-1), so an image may be annotated twice;
this executor yields each image id once, and the run driver skips images already merged.

A Ray instance this executor starts (no address) is watched by `ray_watchdog`, which reaps
what is left of it when the driver dies without `close` (a SIGKILL); Ray alone leaves its agents
running for about a minute then.

Checkpoints: by default each worker loads the model from the spec's path (a path every node can
see) or the Hugging Face cache; with `ship_model` the driver puts the state dict (and a config
file's text) into Ray's object store once and every worker builds from that.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import pickle
import socket
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seem_annotator.annotate import ray_watchdog
from seem_annotator.annotate.annotator import AnnotatorSpec
from seem_annotator.annotate.executor import LocalExecutor
from seem_annotator.annotate.work import ImageResult, ImageTask
from seem_annotator.errors import UserError

INSTALL_HINT = "The ray engine needs Ray: pip install seem-annotator[ray]"
DEFAULT_BATCH_SIZE = 4
CONNECT_TIMEOUT_S = 5.0
RESUME_HINT = "the images merged so far are kept; run the same command again to resume"


def require_ray() -> Any:
    """The `ray` module with Ray Data, or a UserError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise UserError(INSTALL_HINT) from exc
    return ray


def address_endpoint(address: str) -> tuple[str, int] | None:
    """(host, port) of a `host:port` or `ray://host:port` address; None for `auto` (Ray looks it
    up on this machine)."""
    if address == "auto":
        return None
    rest = address[len("ray://"):] if address.startswith("ray://") else address
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UserError(f"Ray address {address!r} is not host:port, ray://host:port or auto.")
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A UserError at once when nothing answers at `address` (ray.init would wait for minutes)."""
    endpoint = address_endpoint(address)
    if endpoint is None:
        return
    try:
        with socket.create_connection(endpoint, timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UserError(f"Cannot reach the Ray cluster at {address} ({reason}): start it with 'ray start --head' "
                        "or check --address.") from exc


class AnnotateWorker:
    """One Ray actor: builds the annotator once, then annotates the batches it is given.

    `state_dict`: the weights from the object store (`ship_model`); `config_text`: the model's
    config file contents when the driver ships a config that workers may not see."""

    def __init__(self, spec: AnnotatorSpec, state_dict: Any = None, config_text: str | None = None) -> None:
        if config_text is not None:
            folder = tempfile.mkdtemp(prefix="seem-annotator-config-")
            path = Path(folder) / Path(spec.model).name
            path.write_text(config_text, encoding="utf-8")
            spec = dataclasses.replace(spec, model=str(path))
        if state_dict is not None and not isinstance(state_dict, dict):
            import ray

            state_dict = ray.get(state_dict)  # an ObjectRef: fetched once, from the object store
        if spec.threads:
            import cv2

            # OpenCV's resize would otherwise start a thread per core of the machine in each worker.
            cv2.setNumThreads(spec.threads)
        self.spec = spec
        self.local = LocalExecutor(annotator=spec.build(state_dict=state_dict))
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tasks = [ImageTask(int(image_id), str(name), str(path), int(seed), bytes(data) if shipped else None)
                 for image_id, name, path, seed, data, shipped in zip(
                     batch["image_id"], batch["file_name"], batch["path"], batch["seed"], batch["data"],
                     batch["shipped"])]
        results = list(self.local.map(self.spec, tasks))
        for result in results:
            result.worker = self.name
        ids = np.array([r.image_id for r in results], dtype=np.int64)
        blobs = np.empty(len(results), dtype=object)
        blobs[:] = [pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL) for r in results]
        return {"image_id": ids, "result": blobs}


def _read_bytes(path: str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except OSError:
        return None  # the worker then reads `path` itself and records the error if it cannot


def user_error_in(exc: BaseException) -> UserError | None:
    """The UserError behind a Ray failure (Ray wraps worker exceptions), if there is one."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, UserError):
            return e
        todo += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    return None


class RayExecutor:
    """Executor on Ray. `address`: None starts a Ray instance on this machine (stopped again by
    `close`); `auto` or `host:port` or `ray://host:port` joins a running cluster. `workers`: actors
    in the pool, each with `cpus_per_worker` CPUs (and as many torch threads) and
    `gpus_per_worker` GPUs (fractions share one GPU; defaults to 1 when the spec's device is
    CUDA). `ship_images`: the driver reads the files and sends their bytes (workers that cannot
    see the paths). `ship_model`: the weights go to the workers through the object store."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int = 1, gpus_per_worker: float = 0.0,
                 ship_images: bool = False, ship_model: bool = False, batch_size: int = DEFAULT_BATCH_SIZE,
                 cpus_per_worker: float = 1.0) -> None:
        if workers < 1:
            raise UserError(f"--workers must be at least 1, got {workers}.")
        if gpus_per_worker < 0 or cpus_per_worker <= 0 or batch_size < 1:
            raise UserError("--gpus-per-worker must be >= 0, CPUs per worker > 0 and the batch size >= 1.")
        if address is not None:
            address_endpoint(address)  # refuse a malformed address before anything starts
        self.address = address
        self.workers = int(workers)
        self.gpus_per_worker = float(gpus_per_worker)
        self.cpus_per_worker = float(cpus_per_worker)
        self.ship_images = ship_images
        self.ship_model = ship_model
        self.batch_size = int(batch_size)
        self._ray: Any = None
        self._owns_connection = False
        self._weights: tuple[str, Any] | None = None  # (spec identity, ObjectRef of the state dict)
        self._watchdog: ray_watchdog.Watchdog | None = None

    # -- connection --------------------------------------------------------------------------------

    def connect(self) -> Any:
        """Start or join Ray (once); reuse a Ray already initialised in this process."""
        if self._ray is not None:
            return self._ray
        ray = require_ray()
        if not ray.is_initialized():
            options: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.WARNING)
            if self.address is None:
                # The embedded instance gets room for the whole pool even on a small machine.
                needed = math.ceil(self.workers * self.cpus_per_worker)
                options.update(num_cpus=max(os.cpu_count() or 1, needed), include_dashboard=False)
            else:
                check_reachable(self.address)
                options["address"] = self.address
            try:
                ray.init(**options)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
                raise UserError(f"Cannot start or join {where}: {str(exc).splitlines()[0]}") from exc
            self._owns_connection = True
            if self.address is None:
                # The instance started here must not outlive this process, even when it is SIGKILLed.
                self._watchdog = ray_watchdog.start()
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the run's own progress bar counts merged images
        self._ray = ray
        return ray

    def _check_resources(self, ray: Any, gpus: float) -> None:
        total = ray.cluster_resources()
        if gpus > 0 and total.get("GPU", 0.0) < gpus:
            raise UserError(f"The Ray cluster has {total.get('GPU', 0.0):g} GPUs; a worker needs {gpus:g} "
                            "(--gpus-per-worker), or run with --device cpu.")
        if total.get("CPU", 0.0) < self.cpus_per_worker:
            raise UserError(f"The Ray cluster has {total.get('CPU', 0.0):g} CPUs; a worker needs "
                            f"{self.cpus_per_worker:g}.")

    # -- the run ---------------------------------------------------------------------------------

    def map(self, spec: AnnotatorSpec, tasks: Sequence[ImageTask]) -> Iterator[ImageResult]:
        tasks = list(tasks)
        if not tasks:
            return
        ray = self.connect()
        gpus = self.gpus_per_worker or (1.0 if spec.device.startswith("cuda") else 0.0)
        if gpus > 0 and not spec.device.startswith("cuda"):
            spec = dataclasses.replace(spec, device="cuda")
        self._check_resources(ray, gpus)
        spec = dataclasses.replace(spec, threads=spec.threads or max(1, int(self.cpus_per_worker)))
        state_ref, config_text = self._model_for_workers(ray, spec)
        dataset = self._dataset(ray, tasks).map_batches(
            AnnotateWorker,
            fn_constructor_kwargs={"spec": spec, "state_dict": state_ref, "config_text": config_text},
            batch_size=self.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=min(self.workers, len(tasks))),
            num_cpus=self.cpus_per_worker,
            num_gpus=gpus or None,
            # Actor restarts and batch retries are Ray Data's defaults for actor pools
            # (max_restarts=-1, max_task_retries=-1); passing them is deprecated in Ray 2.60.
        )
        wanted = {t.image_id for t in tasks}
        done: set[int] = set()
        try:
            # No prefetching: Ray Data would hold each finished batch back until the next one is done.
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0):
                for image_id, blob in zip(batch["image_id"], batch["result"]):
                    image_id = int(image_id)
                    # A batch redone after its worker died may repeat images: each is given once.
                    if image_id in done or image_id not in wanted:
                        continue
                    done.add(image_id)
                    yield pickle.loads(blob)
        except UserError:
            raise
        except Exception as exc:
            cause = user_error_in(exc)
            if cause is not None:
                raise UserError(str(cause)) from exc
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"The Ray run failed ({type(exc).__name__}: {first}); {RESUME_HINT}.") from exc

    def _dataset(self, ray: Any, tasks: list[ImageTask]) -> Any:
        """One Ray block per batch, so batches are the unit of scheduling and of retry. With
        `ship_images` the files are read here, one block at a time, straight into the object
        store (which spills to disk when full)."""
        import pyarrow as pa

        refs = []
        for start in range(0, len(tasks), self.batch_size):
            chunk = tasks[start:start + self.batch_size]
            data = [(t.data if t.data is not None else _read_bytes(t.path)) if self.ship_images else t.data
                    for t in chunk]
            table = pa.table({
                "image_id": pa.array([t.image_id for t in chunk], pa.int64()),
                "file_name": pa.array([t.file_name for t in chunk], pa.string()),
                "path": pa.array([t.path for t in chunk], pa.string()),
                "seed": pa.array([t.seed for t in chunk], pa.int64()),
                "data": pa.array([d or b"" for d in data], pa.binary()),
                "shipped": pa.array([d is not None for d in data], pa.bool_()),
            })
            refs.append(ray.put(table))
        return ray.data.from_arrow_refs(refs)

    def _model_for_workers(self, ray: Any, spec: AnnotatorSpec) -> tuple[Any, str | None]:
        """(ObjectRef of the state dict, config text) with `ship_model`, else (None, None)."""
        if not self.ship_model:
            return None, None
        identity = spec.identity()
        if self._weights is None or self._weights[0] != identity:
            self._weights = (identity, ray.put(spec.load_state_dict()))
        config = Path(spec.model)
        config_text = config.read_text(encoding="utf-8") if config.is_file() else None
        return self._weights[1], config_text

    def close(self) -> None:
        """Drop the shipped weights; stop (or leave) the Ray instance this executor started."""
        self._weights = None
        if self._ray is not None and self._owns_connection:
            self._ray.shutdown()
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None
        self._ray = None
        self._owns_connection = False
