"""Result types of the SEEM top level (:mod:`.seem`): cached image features and answers.

Shapes are for one image; ``h4, w4`` = padded size / 4.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from .seem_decoder import DecoderInputs


@dataclass
class ImageFeatures:
    """Everything the decoder needs from one image (cache this).

    mask_features: (1, C, Hp/4, Wp/4) (channels-last); multi_scale_features: 3 maps (1, C, h_i, w_i), 1/32 -> 1/8;
    padded_hw: (Hp, Wp); image_hw: (H, W) unpadded; decoder_inputs: prepared decoder inputs.
    """

    mask_features: Tensor
    multi_scale_features: list[Tensor]
    padded_hw: tuple[int, int]
    image_hw: tuple[int, int]
    decoder_inputs: DecoderInputs

    def nbytes(self) -> int:
        """Approximate memory held (for byte-bounded caches)."""
        d = self.decoder_inputs
        ts = [self.mask_features, *self.multi_scale_features, *d.src, *d.pos, *d.mask_levels]
        ts += [t for pair in d.kv or [] for t in pair]
        return sum(t.numel() * t.element_size() for t in ts)


@dataclass
class SpatialResult:
    """Answer to spatial prompts for ``n_obj`` objects.

    mask_logits: (n_obj, 1, h4, w4) selected masks; pass back as ``prev_mask`` next round.
    class_logits: (n_obj, K+1) class logits of the selected queries (last = no object).
    caption_embeddings: (n_obj, D) their vision-language embeddings (match against any labels).
    candidate_masks: (n_obj, k, h4, w4) every candidate of each object (v1: k = 3; v0: k = Q).
    candidate_scores: (n_obj, k) mask-embedding · prompt-vector scores (the selection rule).
    candidate_class_logits: (n_obj, k, K+1). selected: (n_obj,) index of the answer in k.
    raw: the decoder's output dict.
    """

    mask_logits: Tensor
    class_logits: Tensor
    caption_embeddings: Tensor
    candidate_masks: Tensor
    candidate_scores: Tensor
    candidate_class_logits: Tensor
    selected: Tensor
    raw: dict[str, Any]


@dataclass
class GroundingResult:
    """Answer to text prompts (one per phrase).

    mask_logits: (n_text, 1, h4, w4); scores: (Q, n_text) grounding similarities;
    matched: (n_text,) chosen grounding query; class_logits (n_text, K+1);
    caption_embeddings (n_text, D); raw: the decoder's output dict.
    """

    mask_logits: Tensor
    scores: Tensor
    matched: Tensor
    class_logits: Tensor
    caption_embeddings: Tensor
    raw: dict[str, Any]


@dataclass
class PanopticSegment:
    """One segment of the panoptic (segment-everything) pass at input-image size.

    region: bool (h, w); category_id: the model's class index; probability: that class's softmax
    probability for the query that made the segment; caption: that query's caption embedding (D,)
    (scored against a label list by the language encoder).
    """

    region: Tensor
    category_id: int
    probability: float
    caption: Tensor
