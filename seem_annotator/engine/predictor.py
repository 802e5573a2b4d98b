"""The SEEM predictor: encode an image once, answer every round of prompts from cached features.

`SeemPredictor` implements `SegmentationBackend` on top of `seem_annotator.model.seem.SEEM`:

- `encode` runs backbone + pixel decoder (plus the decoder's per-layer keys/values) once per image
  at the model's input size (short side 512 by default, as the official demo) and keeps the result
  in a byte-bounded LRU keyed by image content.
- `predict` decodes everything the object's session holds: clicks (3x3 squares), strokes (painted
  with their width), polygons (filled), boxes, a text/voice description, a region marked on another
  image; with the previous round's mask logits as SEEM's memory. The per-click pass leaves out the
  101 object queries: in v1 no spatial query attends to them, so the selected mask is the same
  (tests check it against the full pass), and the round costs a fraction of a full decoder pass.
- Boxes: the official code reduces a box to its centre click. Here the box is a region prompt: its
  centre is a positive click, a thin frame just outside it is negative, the answer is the
  candidate that best fills the box, clipped to the box.
- Every candidate gets label proposals from the project's label list (`labels.LabelVocabulary`);
  close runners-up come back as `alternatives`. Answers are deterministic: all random choices go
  through a sampler seeded by `DecodeRequest.seed`.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from seem_annotator.core import masks as rle_masks
from seem_annotator.core.prompts import ReferringPrompt, prompt_text
from seem_annotator.engine.feature_cache import FeatureCache, default_budget
from seem_annotator.engine.labels import COCO_PANOPTIC_CLASSES, UNKNOWN, LabelVocabulary
from seem_annotator.engine.rasterize import PromptMasks, rasterize
from seem_annotator.engine.types import Candidate, DecodeRequest, ImageInput
from seem_annotator.errors import ModelUnavailableError, UserError
from seem_annotator.model.postprocess import (
    resized_mask,
)
from seem_annotator.model.sampler import TorchSampler
from seem_annotator.model.seem import SEEM, ImageFeatures, MemoryStream

_MAX_STREAMS = 8  # memory streams kept (about 1.9 MB each at 512x768)
ALTERNATIVE_RATIO = 0.6  # a runner-up whose probability is at least this share of the best one
MEMORY_LOGIT = 10.0  # a persisted bool mask as memory logits (sign is all the decoder uses)


@dataclass(frozen=True)
class SeemMemory:
    """What a round leaves for the next: the selected mask logits (1, 1, h4, w4) on one image's
    feature grid (valid only for the same image key and input size)."""

    image_key: str
    input_hw: tuple[int, int]
    logits: Tensor


@dataclass
class _Encoded:
    features: ImageFeatures
    scale: float  # model-input pixels per full-resolution pixel

    def nbytes(self) -> int:
        return self.features.nbytes()


class SeemPredictor:
    """SEEM as a `SegmentationBackend`. Thread-safe (one model call at a time)."""

    def __init__(self, model: SEEM, name: str = "seem:custom", short_side: int = 512, max_side: int = 1333,
                 cache_bytes: int | None = None, class_names: Sequence[str] | None = None,
                 reduced: bool = True, decode_threads: int | None = 1) -> None:
        self.model = model.eval()
        self.name = name
        self.device = str(model.device) if model.device.type != "cuda" else f"cuda:{model.device.index or 0}"
        # A click round is hundreds of small ops, each a thread-pool barrier with 2+ threads. On the
        # shared 2-core machine, 2 threads won while the other core was idle (84 vs 122 ms per
        # round at 512x768) but lost 14x as soon as another process kept one core busy (1686 vs
        # 119 ms): one thread is the robust default. None = torch's setting.
        self.decode_threads = decode_threads if self.device == "cpu" else None
        self.short_side, self.max_side = short_side, max_side
        self.reduced = reduced
        self.cache = FeatureCache(cache_bytes if cache_bytes is not None else default_budget(self.device))
        self.vocabulary = LabelVocabulary(model.language)
        if class_names is None:
            class_names = COCO_PANOPTIC_CLASSES if model.num_classes == 133 else \
                [f"class {i}" for i in range(model.num_classes)]
        self.class_names = tuple(class_names)
        self._classes_ready = False
        self._texts: OrderedDict[str, dict] = OrderedDict()
        self._references: OrderedDict[tuple, object] = OrderedDict()
        self._streams: OrderedDict[tuple, MemoryStream] = OrderedDict()  # next rounds' memories
        self._lock = threading.RLock()

    @classmethod
    def from_name(cls, model_name: str, device: str = "cpu", checkpoint: str | None = None,
                  **kwargs: object) -> SeemPredictor:
        """Load a released model ("focalt_v1") or a config path with `checkpoint`; strict loading."""
        from seem_annotator.model.checkpoint import load_seem
        from seem_annotator.model.config import resolve_model_name
        from seem_annotator.model.hub import resolve_checkpoint

        info = resolve_model_name(model_name)
        path = resolve_checkpoint(checkpoint or model_name)  # fails fast, saying how to download it
        model, _report = load_seem(model_name, path, device=device)
        label = info.name if info is not None else model_name
        return cls(model, name=f"seem:{label}", **kwargs)

    def on_cpu(self) -> SeemPredictor:
        """The same predictor on the CPU (the worker's out-of-memory fallback)."""
        return SeemPredictor(self.model.to("cpu"), self.name, self.short_side, self.max_side,
                             class_names=self.class_names, reduced=self.reduced,
                             decode_threads=self.decode_threads)

    def reduce_input(self) -> None:
        """Halve the model input size (the worker's first out-of-memory fallback) and drop the
        cached features to free device memory."""
        self.short_side = max(128, self.short_side // 2)
        self.max_side = max(256, self.max_side // 2)
        self.cache.clear()
        self._streams.clear()

    # -- SegmentationBackend -------------------------------------------------------------------

    def supports(self, prompt_kind: str) -> bool:
        if prompt_kind == "everything":
            return True
        return self.model.prompts_supported and self.model.predictor.spatial

    def input_size(self, h: int, w: int) -> tuple[int, int]:
        """Model input (h, w): short side `short_side`, long side at most `max_side`."""
        factor = self.short_side / min(h, w)
        factor = min(factor, self.max_side / max(h, w))
        return max(1, round(h * factor)), max(1, round(w * factor))

    def encode(self, image: ImageInput) -> None:
        self._encoded(image)

    def predict(self, request: DecodeRequest) -> Candidate:
        t0 = time.perf_counter()
        if not self.supports("point"):
            raise ModelUnavailableError(f"{self.name} only supports segment-everything; load a v0/v1 model "
                                        "for prompts")
        with self._lock, torch.no_grad():
            enc, encode_ms = self._timed_encode(request.image)
            t1 = time.perf_counter()
            with self.threads():
                cand = self._predict(request, enc)
        t2 = time.perf_counter()
        cand.timings.update(encode=encode_ms, decode=(t2 - t1) * 1e3, total=(t2 - t0) * 1e3)
        return cand

    def prepare_next(self, candidate: Candidate) -> float:
        """Compute what the next round of this object will need from `candidate` (its memory
        stream, see `seem_annotator.model.memory_stream`), so that the next click only runs the
        queries. The worker calls this right after delivering an answer. Returns milliseconds spent
        (0 when there was nothing to do)."""
        mem = candidate.memory
        if not isinstance(mem, SeemMemory):
            return 0.0
        t0 = time.perf_counter()
        with self._lock, torch.no_grad():
            key = self._stream_key(mem)
            enc = self.cache.get((mem.image_key, mem.input_hw))
            if key in self._streams or enc is None or not self.supports("point"):
                return 0.0
            with self.threads():
                stream = self.model.memory_stream(enc.features, mem.logits.to(self.model.device), TorchSampler(0))
            self._streams[key] = stream
            while len(self._streams) > _MAX_STREAMS:
                self._streams.popitem(last=False)
        return (time.perf_counter() - t0) * 1e3

    @staticmethod
    def _stream_key(mem: SeemMemory) -> tuple:
        digest = hashlib.blake2b(mem.logits.detach().float().cpu().numpy().tobytes(), digest_size=16).digest()
        return mem.image_key, mem.input_hw, digest

    def _memory_stream(self, request: DecodeRequest) -> MemoryStream | None:
        """The stream `prepare_next` computed for this request's memory, if any."""
        mem = request.memory
        if not isinstance(mem, SeemMemory) or not self._streams:
            return None
        return self._streams.get(self._stream_key(mem))

    def segment_everything(self, image: ImageInput, labels: tuple[str, ...]) -> list[Candidate]:
        with self._lock, torch.no_grad():
            enc, _ = self._timed_encode(image)
            t0 = time.perf_counter()
            self._ensure_class_embeddings()
            feats = enc.features
            out: list[Candidate] = []
            for seg in self.model.panoptic_segments(feats):
                names = self.vocabulary.propose(seg.caption, labels)[0] if labels else \
                    [(self.class_names[seg.category_id], seg.probability)]
                full = resized_mask(seg.region.float() * 2 - 1, tuple(image.full_size))
                out.append(Candidate(mask=full, score=seg.probability, labels=names, backend=self.name,
                                     timings={"decode": (time.perf_counter() - t0) * 1e3}))
        out.sort(key=lambda c: -c.score)
        return out

    @contextlib.contextmanager
    def threads(self) -> Iterator[None]:
        """Run the body with `decode_threads` torch threads (process-wide, restored after)."""
        if not self.decode_threads:
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(self.decode_threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    # -- encoding ------------------------------------------------------------------------------

    def _timed_encode(self, image: ImageInput) -> tuple[_Encoded, float]:
        t0 = time.perf_counter()
        enc = self._encoded(image)
        return enc, (time.perf_counter() - t0) * 1e3

    def _encoded(self, image: ImageInput) -> _Encoded:
        h, w = image.pixels.shape[:2]
        size = self.input_size(*image.full_size)
        key = (image.key, size)
        enc = self.cache.get(key)
        if enc is not None:
            return enc
        with self._lock, torch.no_grad():
            enc = self.cache.get(key)
            if enc is not None:
                return enc
            pixels = np.ascontiguousarray(image.pixels[..., :3])
            if (h, w) != size:
                interp = cv2.INTER_AREA if size[0] < h else cv2.INTER_CUBIC
                pixels = cv2.resize(pixels, (size[1], size[0]), interpolation=interp)
            # The image may be a read-only view (shared with the GUI); torch wants writable memory.
            tensor = torch.from_numpy(pixels if pixels.flags.writeable else pixels.copy())
            x, hw = self.model.preprocess(tensor.permute(2, 0, 1))
            enc = _Encoded(self.model.encode_image(x, hw), size[0] / image.full_size[0])
            self.cache.put(key, enc)
            return enc

    # -- one round -----------------------------------------------------------------------------

    def _predict(self, request: DecodeRequest, enc: _Encoded) -> Candidate:
        feats = enc.features
        texts = [t for t in (prompt_text(p) for p in request.prompts) if t and t.strip()]
        referring = [p for p in request.prompts if isinstance(p, ReferringPrompt)]
        pm = rasterize(request.prompts, feats.image_hw, enc.scale)
        prev = self._previous_logits(request, feats)
        stream = None if prev is None else self._memory_stream(request)
        sampler = TorchSampler(seed=request.seed)
        box = pm.box_region
        pos, neg = self._box_prompts(pm)
        if pos.any():
            result = self.model.decode_spatial(feats, self._pad(pos, feats), self._pad(neg, feats), prev, sampler,
                                               object_queries=not self.reduced, memories=stream)
            logits = result.candidate_masks[0][:, None]  # (k, 1, h4, w4)
            scores = result.candidate_scores[0].float()
            captions = result.raw["pred_stexts"][0]  # (k, D): v1 k = 3 per object, v0 k = Q
            if texts:  # a description alongside clicks re-ranks the click candidates
                scores = scores.softmax(0) + self._text_similarity(captions, texts[-1]).softmax(0)
            if box is not None:  # the candidate that best fills the box wins
                scores = scores.softmax(0) + 2 * self._box_fit(logits, box, feats)
        elif referring:
            prompt = self._reference_prompt(referring[-1], request, sampler)
            result = self.model.decode_spatial(feats, prompt=prompt, prev_mask=prev, sampler=sampler,
                                               object_queries=not self.reduced, memories=stream)
            logits, scores = result.candidate_masks[0][:, None], result.candidate_scores[0].float()
            captions = result.raw["pred_stexts"][0]
        elif texts:
            # 101 grounding queries, of which the answer shows one or two: only their masks are made.
            g = self.model.decode_grounding(feats, token_embeddings=self._text_tokens(texts[-1]), all_masks=False)
            embeddings = g.raw["pred_gmaskembs"]
            scores = g.scores[:, 0].float()
            captions = g.raw["pred_gtexts"][0]
            return self._candidates(request, feats, lambda i: self.model.query_masks(feats, embeddings[:, i: i + 1]),
                                    scores, captions, box)
        else:  # only negative prompts: nothing is the object
            return Candidate(mask=np.zeros(request.image.full_size, bool), score=0.0, labels=[(UNKNOWN, 1.0)],
                             backend=self.name)
        return self._candidates(request, feats, lambda i: logits[i: i + 1], scores, captions, box)

    def _candidates(self, request: DecodeRequest, feats: ImageFeatures, mask_of: Callable[[int], Tensor],
                    scores: Tensor, captions: Tensor, box: np.ndarray | None) -> Candidate:
        """The best candidate (and a visibly different runner-up) at full resolution; `mask_of(i)`
        gives candidate i's (1, 1, h4, w4) mask logits."""
        probs = scores.softmax(0)
        order = probs.argsort(descending=True).tolist()
        best = order[0]
        proposals = self.vocabulary.propose(captions[order[:2]], request.labels)

        def make(i: int, logits: Tensor, names: list[tuple[str, float]]) -> Candidate:
            mask = resized_mask(self.model.to_image(logits, feats)[0], tuple(request.image.full_size))
            if box is not None:
                self._clip_to_box(mask, box, feats)
            memory = SeemMemory(request.image.key, feats.image_hw, logits.detach())
            return Candidate(mask=mask, score=float(probs[i]), labels=names, memory=memory, backend=self.name)

        first = mask_of(best)
        cand = make(best, first, proposals[0])
        if len(order) > 1 and float(probs[order[1]]) >= ALTERNATIVE_RATIO * float(probs[best]):
            # Only a visibly different mask is worth a flip (judged at the model's input size).
            second = mask_of(order[1])
            a, b = (self.model.to_image(m, feats)[0] > 0 for m in (first, second))
            overlap = float((a & b).sum()) / max(1.0, float((a | b).sum()))
            if overlap < 0.9:
                cand.alternatives.append(make(order[1], second, proposals[1]))
        return cand

    # -- prompt helpers --------------------------------------------------------------------------

    def _pad(self, mask: np.ndarray, feats: ImageFeatures) -> Tensor:
        return self.model.pad_masks(torch.from_numpy(mask)[None], feats)

    @staticmethod
    def _box_prompts(pm: PromptMasks) -> tuple[np.ndarray, np.ndarray]:
        """Painted prompts plus, per box, its centre click and a negative frame just outside it."""
        pos, neg = pm.positive.copy(), pm.negative.copy()
        h, w = pm.size
        for x0, y0, x1, y1 in pm.boxes:
            cy, cx = (y0 + y1 - 1) // 2, (x0 + x1 - 1) // 2
            if not pos[y0:y1, x0:x1].any():
                pos[max(cy - 1, 0):cy + 2, max(cx - 1, 0):cx + 2] = True
            t = max(2, min(h, w) // 100)
            frame = np.zeros((h, w), bool)
            frame[max(y0 - t, 0):min(y1 + t, h), max(x0 - t, 0):min(x1 + t, w)] = True
            frame[y0:y1, x0:x1] = False
            neg |= frame & ~pos
        return pos, neg

    @staticmethod
    def _box_fit(logits: Tensor, box: np.ndarray, feats: ImageFeatures) -> Tensor:
        """IoU of each candidate mask's bounding box with the box, (k,), on the 1/4 grid."""
        h4, w4 = logits.shape[-2:]
        sh, sw = feats.padded_hw[0] / h4, feats.padded_hw[1] / w4
        ys, xs = np.nonzero(box)
        bx0, by0, bx1, by1 = xs.min() / sw, ys.min() / sh, (xs.max() + 1) / sw, (ys.max() + 1) / sh
        fits = []
        for m in (logits[:, 0] > 0).cpu().numpy():
            my, mx = np.nonzero(m)
            if len(mx) == 0:
                fits.append(0.0)
                continue
            ax0, ay0, ax1, ay1 = mx.min(), my.min(), mx.max() + 1, my.max() + 1
            iw = max(0.0, min(ax1, bx1) - max(ax0, bx0))
            ih = max(0.0, min(ay1, by1) - max(ay0, by0))
            inter = iw * ih
            fits.append(inter / ((ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter))
        return torch.tensor(fits, device=logits.device)

    @staticmethod
    def _clip_to_box(mask: np.ndarray, box: np.ndarray, feats: ImageFeatures) -> None:
        """Clear a full-resolution mask outside the box (grown by a 1% margin: box edges are
        hand-drawn), in place."""
        ys, xs = np.nonzero(box)
        h, w = feats.image_hw
        H, W = mask.shape
        m = 0.01 * max(H, W)
        y0, y1 = int(max(0, ys.min() * H / h - m)), int(min(H, (ys.max() + 1) * H / h + m))
        x0, x1 = int(max(0, xs.min() * W / w - m)), int(min(W, (xs.max() + 1) * W / w + m))
        mask[:y0] = False
        mask[y1:] = False
        mask[:, :x0] = False
        mask[:, x1:] = False

    def _previous_logits(self, request: DecodeRequest, feats: ImageFeatures) -> Tensor | None:
        mem = request.memory
        if isinstance(mem, SeemMemory) and mem.image_key == request.image.key and mem.input_hw == feats.image_hw:
            return mem.logits.to(self.model.device)
        if request.previous_mask is None or not np.asarray(request.previous_mask).any():
            return None
        # A persisted bool mask: resize to the input, pad, average down to the 1/4 feature grid.
        h, w = feats.image_hw
        small = cv2.resize(np.asarray(request.previous_mask, np.float32), (w, h), interpolation=cv2.INTER_AREA)
        padded = torch.zeros(1, 1, *feats.padded_hw)
        padded[0, 0, :h, :w] = torch.from_numpy(small)
        h4, w4 = feats.mask_features.shape[-2:]
        quarter = torch.nn.functional.adaptive_avg_pool2d(padded, (h4, w4))
        return ((quarter >= 0.5).float() * 2 - 1).mul(MEMORY_LOGIT).to(self.model.device)

    def _text_tokens(self, text: str) -> dict:
        """Cached grounding token embeddings of a phrase."""
        tokens = self._texts.get(text)
        if tokens is None:
            tokens = self.model.language.get_text_token_embeddings([text], norm=False)
            self._texts[text] = tokens
            while len(self._texts) > 256:
                self._texts.popitem(last=False)
        self._texts.move_to_end(text)
        return tokens

    def _text_similarity(self, captions: Tensor, text: str) -> Tensor:
        t = self._text_tokens(text)["class_emb"][0].float()
        v = captions.float()
        v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-7)
        t = t / t.norm().clamp_min(1e-7)
        return torch.clamp(self.model.language.logit_scale.float().exp(), max=100) * v @ t

    def _reference_prompt(self, prompt: ReferringPrompt, request: DecodeRequest, sampler: TorchSampler) -> object:
        """Prompt tokens of a region on another image, cached per (image, region)."""
        ref_image = request.references.get(prompt.image_id)
        if ref_image is None:
            raise UserError(f"the reference image {prompt.image_id} of this prompt is not available")
        counts = str(prompt.mask_rle.get("counts", ""))
        key = (ref_image.key, hashlib.sha1(counts.encode()).hexdigest())
        cached = self._references.get(key)
        if cached is not None:
            return cached
        ref = self._encoded(ref_image)
        region = rle_masks.decode(prompt.mask_rle)
        h, w = ref.features.image_hw
        region = cv2.resize(region.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
        if not region.any():
            raise UserError("the marked region on the reference image is empty")
        encoded = self.model.encode_reference(ref.features, self._pad(region, ref.features), sampler=sampler)
        self._references[key] = encoded
        while len(self._references) > 32:
            self._references.popitem(last=False)
        return encoded

    def _ensure_class_embeddings(self) -> None:
        if not self._classes_ready:
            # Names alone (no prompt templates): 133 sentences instead of 10773 on first use.
            self.model.language.get_text_embeddings(list(self.class_names) + ["background"], prompt=False)
            self._classes_ready = True
