"""The per-image code every engine runs: read an image, encode it once, run the modes, give
labelled, deduplicated RLE proposals.

`AnnotatorSpec` is picklable (Ray ships it); `spec.build()` loads the model and returns an
`ImageAnnotator`. `ImageAnnotator.annotate(task)` is the whole job for one image; the three stages
it chains are public so that the local executor can overlap them across images:

- `prepare(task)`: read + decode + resize to the model input (no model; any thread),
- `infer(prepared)`: encode + decode every mode (the model; one thread),
- `finish(inferred)`: masks to full resolution, RLE, bbox, dedupe (no model; any thread).

Answers are deterministic: the everything pass has no random choice; the text pass neither; the
referring (exemplar) pass draws through a sampler seeded by the task's seed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from seem_annotator.annotate.settings import MODES, RunSettings
from seem_annotator.annotate.work import ImageResult, ImageTask, Proposal
from seem_annotator.core import images as imgio
from seem_annotator.core import masks as rle_masks
from seem_annotator.engine.labels import COCO_PANOPTIC_CLASSES, UNKNOWN, LabelVocabulary
from seem_annotator.errors import CheckpointError, UserError
from seem_annotator.model.postprocess import (
    resized_mask,
)
from seem_annotator.model.sampler import TorchSampler

NEEDS_CHECKPOINT = ("Auto-annotation needs a SEEM checkpoint (there is no classical auto-annotation): run "
                    "'seem-annotator models download focalt_v1' and pass --model focalt_v1, or pass --model "
                    "CONFIG.yaml --checkpoint FILE")
MAX_TEXT_ANSWERS = 3  # grounding queries looked at per phrase


def input_size(full_hw: tuple[int, int], short_side: int, max_side: int) -> tuple[int, int]:
    """Model input (h, w) of a full-size image: short side `short_side`, long side <= `max_side`
    (the interactive predictor's rule)."""
    h, w = full_hw
    factor = min(short_side / min(h, w), max_side / max(h, w))
    return max(1, round(h * factor)), max(1, round(w * factor))


def resize_to(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if pixels.shape[:2] == tuple(size):
        return np.ascontiguousarray(pixels[..., :3])
    interp = cv2.INTER_AREA if size[0] < pixels.shape[0] else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(pixels[..., :3]), (size[1], size[0]), interpolation=interp)


def resolve_weights(model: str, checkpoint: str | None) -> Path:
    """The checkpoint file of a run, or a CheckpointError saying auto-annotation needs one."""
    from seem_annotator.model.config import resolve_model_name
    from seem_annotator.model.hub import resolve_checkpoint

    if checkpoint is None and resolve_model_name(model) is None:
        raise CheckpointError(f"{NEEDS_CHECKPOINT} ({model} is a config; give its weights with --checkpoint).")
    try:
        return resolve_checkpoint(checkpoint or model)
    except CheckpointError as exc:
        if checkpoint is None:
            raise CheckpointError(f"{NEEDS_CHECKPOINT}. {exc}") from exc
        raise


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a checkpoint file (recorded with the run)."""
    return imgio.file_sha256(path)


@dataclass(frozen=True, eq=False)
class Exemplar:
    """A region on another image standing for "things like this": `pixels` is the reference image
    at its model input size, `mask_rle` the region at that same size, `label` what it is."""

    label: str
    pixels: np.ndarray
    mask_rle: dict
    annotation_id: int | None = None

    def digest(self) -> str:
        h = hashlib.sha256(self.label.encode())
        h.update(np.ascontiguousarray(self.pixels).tobytes())
        h.update(str(self.mask_rle.get("counts", "")).encode())
        return h.hexdigest()[:16]


@dataclass(frozen=True, eq=False)
class AnnotatorSpec:
    """How to build the annotator: `model` is a released name or a config YAML, `checkpoint` its
    weights (None: the released model's cached file, or random weights with `random_weights`,
    for benchmarks only), `threads` torch's CPU threads for the model (None = unchanged)."""

    model: str
    checkpoint: str | None
    settings: RunSettings
    device: str = "cpu"
    exemplars: tuple[Exemplar, ...] = ()
    random_weights: bool = False
    threads: int | None = None

    def identity(self) -> str:
        """Equal for specs that build the same annotator."""
        parts = [self.model, str(self.checkpoint), self.device, self.settings.key(), str(self.random_weights),
                 *(e.digest() for e in self.exemplars)]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]

    def load_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights as tensors (for engines that ship them to workers)."""
        from seem_annotator.model.checkpoint import read_state_dict

        state, _notes = read_state_dict(resolve_weights(self.model, self.checkpoint))
        return state

    def build(self, state_dict: dict[str, torch.Tensor] | None = None) -> ImageAnnotator:
        """Load the model (strictly) and return the annotator. `state_dict`: weights already in
        memory instead of the checkpoint file."""
        from seem_annotator.model.checkpoint import check_state_dict, load_seem
        from seem_annotator.model.config import load_config
        from seem_annotator.model.seem import build_seem

        if self.threads:
            torch.set_num_threads(self.threads)
        torch.set_grad_enabled(False)
        if state_dict is not None:
            with torch.device(self.device):
                model = build_seem(load_config(self.model))
            state, _notes = check_state_dict(model, state_dict, source="the shipped weights",
                                             config_label=f"config {self.model}")
            model.load_state_dict(state, strict=True)
        elif self.checkpoint is None and self.random_weights:
            torch.manual_seed(self.settings.seed)
            with torch.device(self.device):
                model = build_seem(load_config(self.model))
        else:
            model, _report = load_seem(self.model, resolve_weights(self.model, self.checkpoint), device=self.device)
        return ImageAnnotator(model.eval(), self)


@dataclass(eq=False)
class Prepared:
    """An image read and resized to the model input, ready for the model thread."""

    task: ImageTask
    pixels: np.ndarray
    full_size: tuple[int, int]
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(eq=False)
class RawProposal:
    """A proposal at model input resolution: `logits` (h, w) float32 (> 0 = object)."""

    label: str
    score: float
    mode: str
    logits: np.ndarray


@dataclass(eq=False)
class Inferred:
    task: ImageTask
    full_size: tuple[int, int]
    raw: list[RawProposal]
    timings: dict[str, float] = field(default_factory=dict)


class ImageAnnotator:
    """The model plus what a run needs around it. `infer` must be called from one thread at a
    time; `prepare` and `finish` from any."""

    def __init__(self, model: torch.nn.Module, spec: AnnotatorSpec) -> None:
        self.model = model
        self.spec = spec
        self.settings = spec.settings
        self.vocabulary = LabelVocabulary(model.language)
        names = COCO_PANOPTIC_CLASSES if model.num_classes == 133 else [f"class {i}" for i in range(model.num_classes)]
        self._lock = threading.Lock()
        with torch.no_grad():
            # The panoptic head compares its queries with class-name embeddings (names alone).
            model.language.get_text_embeddings(list(names) + ["background"], prompt=False)
        self._tokens: dict[str, dict] = {}
        self._references: dict[int, object] = {}

    # -- the whole job -----------------------------------------------------------------------------

    def annotate(self, task: ImageTask) -> ImageResult:
        prepared = self.prepare(task)
        if isinstance(prepared, ImageResult):
            return prepared
        inferred = self.infer(prepared)
        if isinstance(inferred, ImageResult):
            return inferred
        return self.finish(inferred)

    # -- stage 1: read ----------------------------------------------------------------------------

    def prepare(self, task: ImageTask) -> Prepared | ImageResult:
        t0 = time.perf_counter()
        try:
            proxy = _read(task, self._proxy_side(task))
        except UserError as exc:
            return ImageResult(task.image_id, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - any decoder failure is this image's, not the run's
            return ImageResult(task.image_id, error=f"{task.file_name} could not be read ({exc}).")
        size = input_size(proxy.full_size, self.settings.short_side, self.settings.max_side)
        pixels = resize_to(proxy.pixels, size)
        return Prepared(task, pixels, tuple(proxy.full_size), {"read": time.perf_counter() - t0})

    def _proxy_side(self, task: ImageTask) -> int:
        # Decode no bigger than needed: the model's long side (JPEGs decode at a reduced DCT scale).
        return max(self.settings.max_side, 2 * self.settings.short_side)

    # -- stage 2: model ---------------------------------------------------------------------------

    def infer(self, prepared: Prepared) -> Inferred | ImageResult:
        task = prepared.task
        timings = dict(prepared.timings)
        try:
            with self._lock, torch.no_grad():
                t0 = time.perf_counter()
                feats = self.encode(prepared.pixels, cache_kv=self.settings.modes != ("everything",))
                t1 = time.perf_counter()
                raw: list[RawProposal] = []
                for mode in MODES:
                    if mode in self.settings.modes:
                        raw += getattr(self, f"_{mode}")(feats, task)
                t2 = time.perf_counter()
        except torch.cuda.OutOfMemoryError:
            return ImageResult(task.image_id, error=f"{task.file_name}: out of device memory; try --device cpu.")
        timings.update(encode=t1 - t0, decode=t2 - t1)
        return Inferred(task, prepared.full_size, raw, timings)

    def encode(self, pixels: np.ndarray, cache_kv: bool = True) -> object:
        """Backbone + pixel decoder of an image already at its model input size."""
        tensor = torch.from_numpy(pixels if pixels.flags.writeable else pixels.copy())
        x, hw = self.model.preprocess(tensor.permute(2, 0, 1))
        return self.model.encode_image(x, hw, cache_kv=cache_kv)

    def _everything(self, feats: object, task: ImageTask) -> list[RawProposal]:
        segments = self.model.panoptic_segments(feats)
        if not segments:
            return []
        labels = self.settings.labels
        if labels:
            names = [p[0][0] for p in self.vocabulary.propose(torch.stack([s.caption for s in segments]), labels)]
        else:
            names = [UNKNOWN] * len(segments)
        out = []
        for seg, name in zip(segments, names):
            if self.settings.labels_only and name == UNKNOWN:
                continue
            out.append(RawProposal(name, seg.probability, "everything",
                                   (seg.region.float() * 2 - 1).cpu().numpy()))
        return out

    def _text(self, feats: object, task: ImageTask) -> list[RawProposal]:
        out = []
        for phrase, label in self.settings.grounding_phrases():
            tokens = self._tokens.get(phrase)
            if tokens is None:
                tokens = self._tokens[phrase] = self.model.language.get_text_token_embeddings([phrase], norm=False)
            g = self.model.decode_grounding(feats, token_embeddings=tokens, all_masks=False)
            probs = g.scores[:, 0].float().softmax(0)
            top = probs.argsort(descending=True)[:MAX_TEXT_ANSWERS].tolist()
            keep = [q for q in top if float(probs[q]) >= self.settings.threshold]
            if not keep:
                continue
            logits = self.model.query_masks(feats, g.raw["pred_gmaskembs"][:, keep])[0]  # (n, h4, w4)
            images = self.model.to_image(logits[:, None], feats).cpu().numpy()
            out += [RawProposal(label, float(probs[q]), "text", images[i]) for i, q in enumerate(keep)]
        return out

    def _exemplar(self, feats: object, task: ImageTask) -> list[RawProposal]:
        out = []
        names = list(dict.fromkeys([*self.settings.labels, *(e.label for e in self.spec.exemplars)]))
        for i, exemplar in enumerate(self.spec.exemplars):
            prompt = self._reference(i)
            result = self.model.decode_spatial(feats, prompt=prompt, sampler=TorchSampler(task.seed + i),
                                               object_queries=False)
            scores = result.candidate_scores[0].float()
            best = int(scores.argmax())
            caption = result.raw["pred_stexts"][0][best]
            # The referring path always finds the most similar region; the language head says
            # whether that region is a <label> at all.
            proposals = dict(self.vocabulary.propose(caption, names, top_k=len(names))[0])
            score = float(proposals.get(exemplar.label, 0.0))
            if score < self.settings.threshold:
                continue
            logits = result.candidate_masks[0][best][None, None]
            out.append(RawProposal(exemplar.label, score, "exemplar",
                                   self.model.to_image(logits, feats)[0].cpu().numpy()))
        return out

    def _reference(self, index: int) -> object:
        prompt = self._references.get(index)
        if prompt is None:
            exemplar = self.spec.exemplars[index]
            feats = self.encode(exemplar.pixels)
            region = rle_masks.decode(exemplar.mask_rle)
            if not region.any():
                raise UserError(f"The exemplar of {exemplar.label} has an empty region.")
            pad = self.model.pad_masks(torch.from_numpy(region)[None], feats)
            prompt = self.model.encode_reference(feats, pad, sampler=TorchSampler(self.settings.seed))
            self._references[index] = prompt
        return prompt

    # -- stage 3: masks ----------------------------------------------------------------------------

    def finish(self, inferred: Inferred) -> ImageResult:
        t0 = time.perf_counter()
        candidates = []
        for raw in inferred.raw:
            mask = resized_mask(torch.from_numpy(raw.logits), inferred.full_size)
            if not mask.any():
                continue
            rle = rle_masks.encode(mask)
            candidates.append(Proposal(raw.label, round(float(raw.score), 6), raw.mode, rle, rle_masks.bbox(rle)))
        kept = dedupe(candidates, self.settings.suppress_iou)
        timings = dict(inferred.timings)
        timings["finish"] = time.perf_counter() - t0
        return ImageResult(inferred.task.image_id, kept, None, timings)


def dedupe(proposals: list[Proposal], iou: float) -> list[Proposal]:
    """Best first (score, then mode order); a proposal overlapping a kept one of the same label at
    `iou` or more is dropped."""
    order = sorted(range(len(proposals)), key=lambda i: (-proposals[i].score, MODES.index(proposals[i].mode), i))
    kept: list[Proposal] = []
    for i in order:
        p = proposals[i]
        if all(k.label != p.label or rle_masks.iou(k.rle, p.rle) < iou for k in kept):
            kept.append(p)
    return kept


def _read(task: ImageTask, max_side: int) -> imgio.ProxyImage:
    if task.data is None:
        return imgio.load_for_model(task.path, max_side)
    # Shipped bytes: decode them through the same reader (orientation, formats, limits).
    suffix = Path(task.file_name).suffix or ".img"
    with tempfile.NamedTemporaryFile(suffix=suffix) as fh:
        fh.write(task.data)
        fh.flush()
        return imgio.load_for_model(fh.name, max_side)
