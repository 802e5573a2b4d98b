"""SEEM top level: encode an image once, decode prompts many times.

Typical use (shapes for one image; ``Hp, Wp`` = padded size, ``h4, w4 = Hp/4, Wp/4``)::

    model = build_seem(load_config("focalt_v1")); model.load_state_dict(sd, strict=True)
    x, hw = model.preprocess(image)                 # uint8 (3, H, W) -> (1, 3, Hp, Wp), (H, W)
    feats = model.encode_image(x, hw)               # backbone + pixel decoder, cache per image
    pos = model.pad_masks(click_masks, feats)       # bool (n_obj, H, W) -> (n_obj, Hp, Wp)
    r1 = model.decode_spatial(feats, pos, neg, sampler=TorchSampler(0), object_queries=False)
    r2 = model.decode_spatial(feats, pos2, neg2, prev_mask=r1.mask_logits, ...)
    masks = model.to_image(r2.mask_logits, feats) > 0      # (n_obj, H, W)
    g = model.decode_grounding(feats, ["the red car"])
    raw = model.decode_generic(feats); out = model.postprocess_generic(raw, feats)

State-dict keys are those of the official ``GeneralizedSEEM`` (``backbone.``, ``sem_seg_head.
pixel_decoder.``, ``sem_seg_head.predictor.``, ``criterion.empty_weight``, ``dilation_kernel``),
so released checkpoints load with ``strict=True``.

Referring region ("example image"; the official v1 path for it is broken): the prompt is encoded
on the *reference* image's features (:meth:`SEEM.encode_reference`: points sampled in the marked
region, spatial tokens and the prompt vector read from the reference features) and decoded on the
*target* image (:meth:`SEEM.decode_spatial` with ``prompt=``): the target's spatial queries attend
to the reference tokens, and the answer is the candidate whose mask embedding best matches the
reference prompt vector, as the demo model does with its visual tokens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import CheckpointError
from .attention_layout import layout_arch
from .backbone import build_backbone
from .config import cfg_get, load_config
from .language import build_language_encoder
from .memory_stream import MemoryStream
from .pixel_decoder import build_pixel_decoder
from .postprocess import (
    instance_inference,
    panoptic_inference,
    sem_seg_postprocess,
    semantic_inference,
    upsample_masks,
)
from .sampler import Sampler, TorchSampler
from .seem_decoder import SEEMDecoder, mask_logits
from .seem_outputs import GroundingResult, ImageFeatures, PanopticSegment, SpatialResult
from .spatial_prompts import SpatialPrompt

COCO_THING_IDS = range(80)  # COCO-133 panoptic: contiguous ids 0..79 are things

__all__ = ["SEEM", "build_seem", "ImageFeatures", "SpatialResult", "GroundingResult", "SpatialPrompt",
           "MemoryStream"]


class SegHead(nn.Module):
    """``sem_seg_head``: pixel decoder + SEEM decoder (key prefix holder)."""

    def __init__(self, pixel_decoder: nn.Module, predictor: SEEMDecoder, num_classes: int) -> None:
        super().__init__()
        self.pixel_decoder = pixel_decoder
        self.predictor = predictor
        self.num_classes = num_classes


class Criterion(nn.Module):
    """Holds the training criterion's only state, ``empty_weight`` [K+1] (loss class weights),
    so that checkpoints saved from the training model load strictly."""

    def __init__(self, num_classes: int, no_object_weight: float) -> None:
        super().__init__()
        w = torch.ones(num_classes + 1)
        w[-1] = no_object_weight
        self.register_buffer("empty_weight", w)


class SEEM(nn.Module):
    """SEEM: backbone, ``sem_seg_head`` {pixel_decoder, predictor}, optional ``criterion``."""

    def __init__(
        self,
        *,
        backbone: nn.Module,
        pixel_decoder: nn.Module,
        predictor: SEEMDecoder,
        num_classes: int,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        size_divisibility: int,
        criterion: Criterion | None = None,
        object_mask_threshold: float = 0.8,
        overlap_threshold: float = 0.8,
        test_topk_per_image: int = 100,
        semantic_on: bool = True,
        panoptic_on: bool = True,
        instance_on: bool = True,
        sem_seg_postprocess_before_inference: bool = True,
        thing_ids: Collection[int] | None = None,
        prompts_supported: bool = True,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.sem_seg_head = SegHead(pixel_decoder, predictor, num_classes)
        if criterion is not None:
            self.criterion = criterion
        self.register_buffer("dilation_kernel", torch.ones(1, 1, 3, 3))
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(-1, 1, 1), False)
        if size_divisibility < 0:
            size_divisibility = int(backbone.size_divisibility)
        self.size_divisibility = int(size_divisibility)
        self.num_classes = num_classes
        self.object_mask_threshold = object_mask_threshold
        self.overlap_threshold = overlap_threshold
        self.test_topk_per_image = test_topk_per_image
        self.semantic_on, self.panoptic_on, self.instance_on = semantic_on, panoptic_on, instance_on
        self.sem_seg_postprocess_before_inference = sem_seg_postprocess_before_inference or panoptic_on \
            or instance_on
        if thing_ids is None:
            thing_ids = COCO_THING_IDS if num_classes == 133 else ()
        self.thing_ids: set[int] = {int(t) for t in thing_ids}
        self.prompts_supported = prompts_supported
        self.autocast_dtype: torch.dtype | None = None  # e.g. torch.float16 on CUDA, torch.bfloat16 on CPU

    # -- plumbing --------------------------------------------------------------------------
    @property
    def predictor(self) -> SEEMDecoder:
        return self.sem_seg_head.predictor

    @property
    def language(self) -> nn.Module:
        """The language encoder (class embeddings, token embeddings)."""
        return self.sem_seg_head.predictor.lang_encoder

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    @contextlib.contextmanager
    def _autocast(self) -> Iterator[None]:
        if self.autocast_dtype is not None:
            with torch.autocast(self.device.type, dtype=self.autocast_dtype):
                yield
        else:
            yield

    # -- image side ------------------------------------------------------------------------
    def padded_size(self, hw: tuple[int, int]) -> tuple[int, int]:
        d = self.size_divisibility
        if d <= 1:
            return int(hw[0]), int(hw[1])
        return (int(hw[0]) + d - 1) // d * d, (int(hw[1]) + d - 1) // d * d

    def preprocess(self, image: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """uint8 RGB (3, H, W) -> normalised, bottom/right zero-padded (1, 3, Hp, Wp), and (H, W).

        Padding is added after normalisation (zeros in normalised space), as the reference does.
        """
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"expected an RGB image tensor (3, H, W), got {tuple(image.shape)}")
        h, w = int(image.shape[1]), int(image.shape[2])
        x = (image.to(self.device, torch.float32) - self.pixel_mean) / self.pixel_std
        hp, wp = self.padded_size((h, w))
        return F.pad(x, (0, wp - w, 0, hp - h))[None], (h, w)

    @torch.no_grad()
    def encode_image(self, x: Tensor, image_hw: tuple[int, int] | None = None, cache_kv: bool = True) -> ImageFeatures:
        """Backbone + pixel decoder on a preprocessed (1, 3, Hp, Wp) batch -> :class:`ImageFeatures`.

        ``cache_kv`` also stores the decoder's per-layer cross-attention keys/values (about 8% more
        encode time, ~2x the feature memory), which makes every later decode of the image cheap.
        """
        hp, wp = int(x.shape[-2]), int(x.shape[-1])
        with self._autocast():
            feats = self.backbone(x)
            mask_features, _, multi_scale = self.sem_seg_head.pixel_decoder.forward_features(feats)
        return self.features_from(mask_features, multi_scale, (hp, wp), tuple(image_hw or (hp, wp)), cache_kv)

    @torch.no_grad()
    def features_from(self, mask_features: Tensor, multi_scale_features: Sequence[Tensor],
                      padded_hw: tuple[int, int], image_hw: tuple[int, int], cache_kv: bool = False) -> ImageFeatures:
        """:class:`ImageFeatures` from pixel-decoder outputs (``encode_image``, tests, caches)."""
        with self._autocast():
            inputs = self.predictor.prepare(list(multi_scale_features), mask_features)
            if cache_kv:
                self.predictor.cache_kv(inputs)
        # The decoder's (channels-last) copy of mask_features is the one kept: no second copy.
        return ImageFeatures(inputs.mask_features, list(multi_scale_features), tuple(padded_hw), tuple(image_hw),
                             inputs)

    def pad_masks(self, masks: Tensor, features: ImageFeatures) -> Tensor:
        """bool (n, H, W) at image resolution -> (n, Hp, Wp) zero-padded bottom/right."""
        hp, wp = features.padded_hw
        out = torch.zeros(masks.shape[0], hp, wp, dtype=torch.bool, device=self.device)
        out[:, : masks.shape[1], : masks.shape[2]] = masks.to(self.device, torch.bool)
        return out

    def to_image(self, mask_logits: Tensor, features: ImageFeatures, size: tuple[int, int] | None = None) -> Tensor:
        """(n, 1, h4, w4) logits -> (n, H, W) logits at image resolution: bilinear to the padded
        size, crop the padding; with ``size`` resized further (bilinear)."""
        up = upsample_masks(mask_logits.float(), features.padded_hw)
        h, w = features.image_hw
        out = up[:, :, :h, :w]
        if size is not None and tuple(size) != (h, w):
            out = F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=False)
        return out[:, 0]

    # -- prompts ---------------------------------------------------------------------------
    def _check_prompts(self) -> None:
        if not self.prompts_supported or not self.predictor.spatial:
            raise CheckpointError("This SEEM config only supports segment-everything; load the model with its "
                                  "v0 or v1 config to use prompts.")

    def _v0_lists(self, masks: Tensor) -> list[Tensor]:
        return [masks[i: i + 1] for i in range(masks.shape[0])]

    @torch.no_grad()
    def encode_reference(self, features: ImageFeatures, region: Tensor, neg_region: Tensor | None = None,
                         sampler: Sampler | None = None) -> SpatialPrompt:
        """Encode marked regions of a *reference* image as a reusable prompt.

        region / neg_region: bool (n_obj, Hp, Wp) on the reference image's padded grid.
        Returns a :class:`SpatialPrompt` to pass as ``prompt=`` to :meth:`decode_spatial` on any
        image encoded by this model.
        """
        self._check_prompts()
        sampler = sampler or TorchSampler()
        neg = torch.zeros_like(region) if neg_region is None else neg_region
        inputs = features.decoder_inputs
        with self._autocast():
            if self.predictor.version == "v1":
                return self.predictor.encode_spatial(inputs, [region], [neg], sampler)
            return self.predictor.encode_spatial(inputs.repeat(region.shape[0]), self._v0_lists(region),
                                                 self._v0_lists(neg), sampler)

    @torch.no_grad()
    def decode_spatial(
        self,
        features: ImageFeatures,
        pos_masks: Tensor | None = None,
        neg_masks: Tensor | None = None,
        prev_mask: Tensor | None = None,
        sampler: Sampler | None = None,
        object_queries: bool = True,
        prompt: SpatialPrompt | None = None,
        aux: bool = False,
        memories: MemoryStream | None = None,
    ) -> SpatialResult:
        """One interactive round for ``n_obj`` objects.

        pos_masks / neg_masks: bool (n_obj, Hp, Wp) cumulative positive / negative prompt masks
        (clicks as small squares, strokes, filled polygons); or ``prompt`` from
        :meth:`encode_reference` (then the masks are not used).
        prev_mask: (n_obj, 1, h4, w4) the previous round's ``mask_logits`` (memory), or None.
        memories: :meth:`memory_stream` of ``prev_mask`` computed ahead (else computed here).
        object_queries: False skips the object queries; the answer is the same (see
        :mod:`.seem_decoder`) and much cheaper. aux: also return the earlier layers' predictions
        in ``raw["aux_outputs"]``.
        """
        self._check_prompts()
        sampler = sampler or TorchSampler()
        dec = self.predictor
        v1 = dec.version == "v1"
        with self._autocast():
            if prompt is None:
                if pos_masks is None:
                    raise ValueError("give prompt masks or an encoded prompt")
                if neg_masks is None:
                    neg_masks = torch.zeros_like(pos_masks)
                for m in (pos_masks, neg_masks):
                    if m.ndim != 3 or tuple(m.shape[-2:]) != tuple(features.padded_hw) or m.shape != pos_masks.shape:
                        raise ValueError(f"prompt masks must be bool (n_obj, {features.padded_hw[0]}, "
                                         f"{features.padded_hw[1]}) (see pad_masks), got {tuple(m.shape)}")
                n_obj = pos_masks.shape[0]
                inputs = features.decoder_inputs if v1 else features.decoder_inputs.repeat(n_obj)
                if v1:
                    prompt = dec.encode_spatial(inputs, [pos_masks], [neg_masks], sampler)
                else:
                    prompt = dec.encode_spatial(inputs, self._v0_lists(pos_masks), self._v0_lists(neg_masks), sampler)
            else:
                n_obj = prompt.num_objects if v1 else prompt.tokens[0].shape[1]
                inputs = features.decoder_inputs if v1 else features.decoder_inputs.repeat(n_obj)
                prompt = prompt.to(self.device)
            prev = None
            if prev_mask is not None:
                if prev_mask.shape[0] != n_obj:
                    raise ValueError(f"prev_mask has {prev_mask.shape[0]} objects, the prompt has {n_obj}")
                prev = prev_mask.transpose(0, 1) if v1 else prev_mask
            raw = dec.decode(inputs, spatial=prompt, prev_mask=prev, sampler=sampler, object_queries=object_queries,
                             aux=aux, memories=memories)
        return self._spatial_result(raw, n_obj)

    def memory_stream(self, features: ImageFeatures, prev_mask: Tensor, sampler: Sampler | None = None
                      ) -> MemoryStream:
        """The spatial memories' states for a later round with ``prev_mask`` (n_obj, 1, h4, w4), as
        :meth:`decode_spatial` would compute them (pass it there as ``memories``). They depend on
        the previous mask only, not on the next round's prompts, so they can be computed as soon as
        a round is answered. ``sampler`` draws the memory assignment (several objects, v1)."""
        dec = self.predictor
        v1 = dec.version == "v1"
        inputs = features.decoder_inputs if v1 else features.decoder_inputs.repeat(prev_mask.shape[0])
        with self._autocast():
            return dec.memory_stream(inputs, prev_mask.transpose(0, 1) if v1 else prev_mask,
                                     sampler or TorchSampler())

    def _spatial_result(self, raw: dict[str, Any], n_obj: int) -> SpatialResult:
        dec = self.predictor
        # float32 results also under autocast
        masks, emb, logits, caps = (raw[k].float() for k in ("pred_smasks", "pred_smaskembs", "pred_slogits",
                                                              "pred_stexts"))
        scores = emb @ raw["pred_pspatials"].float().transpose(1, 2)  # (B, Ns, n_obj)
        if dec.version == "v1":
            k = dec.layout.query_number
            h, w = masks.shape[-2:]
            cand_masks = masks[0].reshape(n_obj, k, h, w)
            cand_scores = scores[0].reshape(n_obj, k, n_obj).diagonal(dim1=0, dim2=2).t()
            cand_logits = logits[0].reshape(n_obj, k, -1)
            cand_caps = caps[0].reshape(n_obj, k, -1)
            mask_logits = raw["prev_mask"].float().transpose(0, 1)
        else:  # batch = objects, every object has all Q queries
            cand_masks, cand_scores, cand_logits, cand_caps = masks, scores[:, :, 0], logits, caps
            mask_logits = raw["prev_mask"].float()
        sel = cand_scores.argmax(dim=1)
        rows = torch.arange(n_obj, device=sel.device)
        return SpatialResult(
            mask_logits=mask_logits,
            class_logits=cand_logits[rows, sel],
            caption_embeddings=cand_caps[rows, sel],
            candidate_masks=cand_masks,
            candidate_scores=cand_scores,
            candidate_class_logits=cand_logits,
            selected=sel,
            raw=raw,
        )

    @torch.no_grad()
    def decode_grounding(
        self,
        features: ImageFeatures,
        texts: Sequence[str] | None = None,
        token_embeddings: Mapping[str, Any] | None = None,
        object_queries: bool = False,
        aux: bool = False,
        all_masks: bool = True,
    ) -> GroundingResult:
        """Text grounding: one mask per phrase.

        All phrases' tokens (non-padding, SOT..EOT, projected, not normalised) form one token
        sequence the grounding queries attend to; each phrase then picks the grounding query whose
        caption embedding is most similar to the phrase's EOT embedding (``vl_similarity``).
        ``token_embeddings``: a precomputed ``get_text_token_embeddings(texts, norm=False)`` result
        (cache it per phrase) instead of ``texts``. ``all_masks=False`` computes the matched
        queries' masks only (``raw`` then has ``pred_gmaskembs`` for :meth:`query_masks`).
        """
        if token_embeddings is None:
            if not texts:
                raise ValueError("give texts or token embeddings")
            token_embeddings = self.language.get_text_token_embeddings(list(texts), norm=False)
        token_emb = token_embeddings["token_emb"].to(self.device)
        keep = token_embeddings["tokens"]["attention_mask"].to(self.device).bool()
        tokens = token_emb[keep][:, None]  # (T, 1, D)
        with self._autocast():
            raw = self.predictor.decode(features.decoder_inputs, grounding_tokens=tokens.to(token_emb.dtype),
                                        grounding_padding=torch.zeros(1, tokens.shape[0], dtype=torch.bool,
                                                                      device=self.device),
                                        object_queries=object_queries, aux=aux, final_masks=all_masks)
        v = raw["pred_gtexts"][0].float()
        t = token_embeddings["class_emb"].to(v)
        v = v / (v.norm(dim=-1, keepdim=True) + 1e-7)
        t = t / (t.norm(dim=-1, keepdim=True) + 1e-7)
        scores = torch.clamp(self.language.logit_scale.exp(), max=100) * v @ t.t()
        matched = scores.argmax(0)
        caps = raw["pred_gtexts"][0][matched].float()
        masks = raw["pred_gmasks"][0][matched] if all_masks else \
            self.query_masks(features, raw["pred_gmaskembs"][:, matched])[0]
        return GroundingResult(
            mask_logits=masks[:, None].float(),
            scores=scores,
            matched=matched,
            class_logits=self.language.compute_similarity(caps[None])[0],
            caption_embeddings=caps,
            raw=raw,
        )

    def query_masks(self, features: ImageFeatures, embeddings: Tensor) -> Tensor:
        """Mask logits (B, n, h4, w4), float32, of decoder mask embeddings (B, n, C) (e.g. the
        ``pred_gmaskembs`` of grounding queries one picked)."""
        return mask_logits(embeddings.to(features.decoder_inputs.mask_features.dtype),
                           features.decoder_inputs.mask_features).float()

    # -- segment everything ----------------------------------------------------------------
    @torch.no_grad()
    def decode_generic(self, features: ImageFeatures, aux: bool = True) -> dict[str, Any]:
        """Object queries only: ``pred_logits`` (1, Q, K+1), ``pred_masks`` (1, Q, h4, w4),
        ``pred_captions`` (1, Q, D), ``aux_outputs`` (earlier layers, with ``aux``)."""
        with self._autocast():
            return self.predictor.decode(features.decoder_inputs, aux=aux)

    @torch.no_grad()
    def postprocess_generic(self, raw: Mapping[str, Any], features: ImageFeatures,
                            height: int | None = None, width: int | None = None) -> dict[str, Any]:
        """Semantic (K, H, W), panoptic (ids int32 (H, W), segments_info) and instance results at
        (height, width) (default: the image size), as the reference ``evaluate``."""
        h, w = features.image_hw
        height, width = height or h, width or w
        cls = raw["pred_logits"][0].float()
        masks = upsample_masks(raw["pred_masks"].float(), features.padded_hw)[0]
        out: dict[str, Any] = {}
        if self.sem_seg_postprocess_before_inference:
            masks = sem_seg_postprocess(masks, (h, w), height, width)
        if self.semantic_on:
            r = semantic_inference(cls, masks)
            if not self.sem_seg_postprocess_before_inference:
                r = sem_seg_postprocess(r, (h, w), height, width)
            out["sem_seg"] = r
        if self.panoptic_on:
            out["panoptic_seg"] = panoptic_inference(cls, masks, self.num_classes, self.thing_ids,
                                                     self.object_mask_threshold, self.overlap_threshold)
        if self.instance_on:
            out["instances"] = instance_inference(cls, masks, self.num_classes, self.test_topk_per_image,
                                                  self.thing_ids if self.panoptic_on else None)
        return out

    @torch.no_grad()
    def panoptic_segments(self, features: ImageFeatures) -> list[PanopticSegment]:
        """The panoptic pass as segments at input-image size (h, w), in the model's order, each with
        the query that made it: the one whose own mask overlaps the segment best."""
        raw = self.decode_generic(features, aux=False)
        h, w = features.image_hw
        cls = raw["pred_logits"][0].float()
        masks = sem_seg_postprocess(upsample_masks(raw["pred_masks"].float(), features.padded_hw)[0], (h, w), h, w)
        ids, segments = panoptic_inference(cls, masks, self.num_classes, self.thing_ids,
                                           self.object_mask_threshold, self.overlap_threshold)
        binary = masks > 0
        out = []
        for seg in segments:
            region = ids == seg["id"]
            inter = (binary & region).flatten(1).sum(1).float()
            union = (binary | region).flatten(1).sum(1).float().clamp_min(1)
            q = int((inter / union).argmax())
            category = int(seg["category_id"])
            out.append(PanopticSegment(region, category, float(cls[q].softmax(-1)[category]),
                                       raw["pred_captions"][0, q]))
        return out

    @torch.no_grad()
    def forward(self, image: Tensor) -> dict[str, Any]:
        """Segment everything on a uint8 (3, H, W) image (see :meth:`postprocess_generic`)."""
        x, hw = self.preprocess(image)
        feats = self.encode_image(x, hw)
        return self.postprocess_generic(self.decode_generic(feats), feats)


def build_seem(cfg: Mapping[str, Any] | str | Path) -> SEEM:
    """Build SEEM from an official option tree (or a config name / YAML path).

    Weights are freshly initialised; works under ``with torch.device("meta"):``. Raises
    CheckpointError for configs this build does not support.
    """
    if not isinstance(cfg, Mapping):
        cfg = load_config(cfg)
    cfg = dict(cfg)
    model_name = str(cfg_get(cfg, "MODEL.NAME"))
    decoder_name = str(cfg_get(cfg, "MODEL.DECODER.NAME"))
    versions = {"seem_v0": "v0", "seem_v1": "v1", "seem_demo": "v0"}
    if decoder_name not in versions:
        raise CheckpointError(f"Unsupported MODEL.DECODER.NAME {decoder_name!r}; this build supports "
                              "seem_v0, seem_v1 and seem_demo.")
    backbone = build_backbone(cfg)
    pixel_decoder = build_pixel_decoder(cfg, backbone)
    lang = build_language_encoder(cfg)
    num_classes = int(cfg_get(cfg, "MODEL.ENCODER.NUM_CLASSES"))
    is_demo = decoder_name == "seem_demo"
    predictor = SEEMDecoder(
        lang_encoder=lang,
        in_channels=int(cfg_get(cfg, "MODEL.ENCODER.CONVS_DIM")),
        hidden_dim=int(cfg_get(cfg, "MODEL.DECODER.HIDDEN_DIM")),
        dim_proj=int(cfg_get(cfg, "MODEL.DIM_PROJ")),
        num_queries=int(cfg_get(cfg, "MODEL.DECODER.NUM_OBJECT_QUERIES")),
        nheads=int(cfg_get(cfg, "MODEL.DECODER.NHEADS")),
        dim_feedforward=int(cfg_get(cfg, "MODEL.DECODER.DIM_FEEDFORWARD")),
        dec_layers=int(cfg_get(cfg, "MODEL.DECODER.DEC_LAYERS")) - 1,
        mask_dim=int(cfg_get(cfg, "MODEL.ENCODER.MASK_DIM")),
        max_spatial_len=[int(v) for v in cfg_get(cfg, "MODEL.DECODER.MAX_SPATIAL_LEN", [512] * 4)],
        attn_arch=layout_arch(cfg_get(cfg, "ATTENTION_ARCH"), is_demo),
        version=versions[decoder_name],
        enforce_input_project=bool(cfg_get(cfg, "MODEL.DECODER.ENFORCE_INPUT_PROJ", False)),
        spatial=bool(cfg_get(cfg, "MODEL.DECODER.SPATIAL.ENABLED", False)),
    )
    criterion = None
    if model_name in ("seem_model_v0", "seem_model_v1"):
        criterion = Criterion(num_classes, float(cfg_get(cfg, "MODEL.DECODER.NO_OBJECT_WEIGHT", 0.1)))
    test = "MODEL.DECODER.TEST."
    return SEEM(
        backbone=backbone,
        pixel_decoder=pixel_decoder,
        predictor=predictor,
        num_classes=num_classes,
        pixel_mean=[float(v) for v in cfg_get(cfg, "INPUT.PIXEL_MEAN")],
        pixel_std=[float(v) for v in cfg_get(cfg, "INPUT.PIXEL_STD")],
        size_divisibility=int(cfg_get(cfg, "MODEL.DECODER.SIZE_DIVISIBILITY", -1)),
        criterion=criterion,
        object_mask_threshold=float(cfg_get(cfg, test + "OBJECT_MASK_THRESHOLD", 0.8)),
        overlap_threshold=float(cfg_get(cfg, test + "OVERLAP_THRESHOLD", 0.8)),
        test_topk_per_image=int(cfg_get(cfg, "TEST.DETECTIONS_PER_IMAGE", 100)),
        semantic_on=bool(cfg_get(cfg, test + "SEMANTIC_ON", True)),
        panoptic_on=bool(cfg_get(cfg, test + "PANOPTIC_ON", True)),
        instance_on=bool(cfg_get(cfg, test + "INSTANCE_ON", True)),
        sem_seg_postprocess_before_inference=bool(cfg_get(cfg, test + "SEM_SEG_POSTPROCESSING_BEFORE_INFERENCE",
                                                          False)),
        prompts_supported=not is_demo,
    )
