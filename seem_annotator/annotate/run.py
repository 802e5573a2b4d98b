"""The run driver: a persisted auto-annotation run over a project's images.

    settings, spec = prepare_run(project, RunSettings(modes=("everything",)), "focalt_v1", None)
    summary = run(project, spec, make_executor("local"), images=None, progress=bar)

The run is found by its settings key (same settings, model and checkpoint = same run), so
running the same command again resumes it: images the run has merged are skipped, images that
failed are tried again. The executor yields one `ImageResult` per image; this thread (the only
one that writes the store) merges each in one transaction (`core.runs.merge_image`, with
suppression against accepted annotations and earlier proposals of the label). A SIGKILL at any
moment loses at most the images in flight. Per-image seeds (`RunSettings.image_seed`) make the
answers the same in any order, engine or resume.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from seem_annotator.annotate.annotator import (
    AnnotatorSpec,
    Exemplar,
    file_digest,
    input_size,
    resize_to,
    resolve_weights,
)
from seem_annotator.annotate.executor import Executor
from seem_annotator.annotate.settings import RunSettings
from seem_annotator.annotate.work import ImageTask
from seem_annotator.core import masks
from seem_annotator.core import runs as run_store
from seem_annotator.core.project import Project
from seem_annotator.core.records import ImageRecord
from seem_annotator.errors import UserError

Progress = Callable[[int, int], None]


@dataclass
class RunSummary:
    """What one invocation did: `images` merged now (failed included), `skipped` already done,
    `proposals` added, wall `seconds`, `errors` file name -> one line."""

    run_id: int
    resumed: bool
    images: int = 0
    skipped: int = 0
    failed: int = 0
    proposals: int = 0
    seconds: float = 0.0
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict:
        return {"run": self.run_id, "resumed": self.resumed, "images": self.images, "skipped": self.skipped,
                "failed": self.failed, "proposals": self.proposals, "seconds": round(self.seconds, 4),
                "images_per_s": round(self.images_per_s, 4), "errors": self.errors}


def model_identity(model: str) -> str:
    """What a run records as its model: a config file by its absolute path, a released name as given."""
    return str(Path(model).resolve()) if Path(model).is_file() else model


def prepare_run(project: Project, settings: RunSettings, model: str, checkpoint: str | None,
                device: str = "cpu", random_weights: bool = False, threads: int | None = None) -> AnnotatorSpec:
    """The spec of a run: labels default to the project's, the checkpoint is resolved and hashed
    (a clear error without one), exemplars are collected; settings validated."""
    labels = settings.labels or tuple(label.name for label in project.labels())
    sha = None
    if not random_weights:
        weights = resolve_weights(model, checkpoint)
        checkpoint = str(weights.resolve())  # absolute: Ray workers run in other folders
        sha = file_digest(weights)
    identity = model_identity(model)
    settings = dataclasses.replace(settings, labels=labels, model=identity, checkpoint_sha256=sha)
    settings.validate()
    exemplars = collect_exemplars(project, settings) if "exemplar" in settings.modes else ()
    return AnnotatorSpec(identity, checkpoint, settings, device=device, exemplars=exemplars,
                         random_weights=random_weights, threads=threads)


def collect_exemplars(project: Project, settings: RunSettings) -> tuple[Exemplar, ...]:
    """The accepted annotations the selection names, each as its image at model input size and
    its mask at that size; a UserError when there are none."""
    chosen = settings.exemplars
    wanted = {name.casefold() for name in (chosen.labels or settings.labels)}
    names = {label.id: label.name for label in project.labels()}
    picked = []
    for ann in project.annotations():
        by_id = ann.id in chosen.annotation_ids
        by_label = names.get(ann.label_id, "").casefold() in wanted and \
            (not chosen.image_ids or ann.image_id in chosen.image_ids)
        if by_id or (by_label and not chosen.annotation_ids):
            picked.append(ann)
    if not picked:
        which = ", ".join(sorted(wanted)) or "any label"
        raise UserError(f"The exemplar mode needs exemplars: accept at least one annotation of {which} "
                        "first (every accepted annotation of a label is an exemplar of it).")
    out = []
    for ann in picked:
        proxy = project.load_for_model(ann.image_id, max(settings.max_side, 2 * settings.short_side))
        size = input_size(tuple(proxy.full_size), settings.short_side, settings.max_side)
        mask = masks.decode_resized(ann.rle, size)
        out.append(Exemplar(names[ann.label_id], resize_to(proxy.pixels, size), masks.encode(mask), ann.id))
    return tuple(out)


def select_images(project: Project, pattern: str | None = None) -> list[ImageRecord]:
    """The project's images whose file name (relative, POSIX) matches the glob (all when None)."""
    images = project.images()
    if pattern:
        images = [i for i in images if fnmatch.fnmatch(i.file_name, pattern)
                  or fnmatch.fnmatch(Path(i.file_name).name, pattern)]
        if not images:
            raise UserError(f"No image of the project matches --images {pattern!r}.")
    return images


def run(project: Project, spec: AnnotatorSpec, executor: Executor, images: Sequence[ImageRecord] | None = None,
        progress: Progress | None = None, should_stop: Callable[[], bool] | None = None) -> RunSummary:
    """Create or resume the spec's run and annotate every image of `images` (default: all) it has
    not merged yet. `progress(done, total)` after each merged image; `should_stop()` True ends the
    invocation after the current image (the run stays resumable)."""
    settings = spec.settings
    settings.validate()
    store = project.store
    record, created = run_store.open_run(store, settings.key(), settings.to_dict(), settings.model,
                                         settings.checkpoint_sha256, executor.name)
    summary = RunSummary(record.id, resumed=not created)
    images = list(project.images() if images is None else images)
    states = run_store.image_states(store, record.id)
    todo = [i for i in images if states.get(i.id) != run_store.DONE]
    summary.skipped = len(images) - len(todo)
    names = {i.id: i.file_name for i in todo}
    tasks = [ImageTask(i.id, i.file_name, str(project.root / i.file_name), settings.image_seed(i.id)) for i in todo]
    if progress:
        progress(0, len(tasks))
    start = time.perf_counter()
    results = executor.map(spec, tasks)
    try:
        for result in results:
            seconds = sum(result.timings.values()) if result.timings else None
            summary.proposals += run_store.merge_image(store, record.id, result.image_id, result.proposals,
                                                       result.error, seconds, settings.suppress_iou)
            summary.images += 1
            if result.error:
                summary.failed += 1
                summary.errors[names.get(result.image_id, str(result.image_id))] = result.error
            if progress:
                progress(summary.images, len(tasks))
            if should_stop is not None and should_stop():
                break
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()
        summary.seconds = time.perf_counter() - start
    if summary.images == len(tasks):
        run_store.finish_run(store, record.id)
    return summary
