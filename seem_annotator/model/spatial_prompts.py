"""Spatial prompts: bool masks -> sampled points -> per-level spatial tokens.

SEEM has no point encoder: a click, stroke, box or region is a bool mask at the padded input
resolution. The decoder samples up to ``MAX_SPATIAL_LEN`` of its pixels and reads features there:

* the *prompt vectors* ``query_pos`` / ``query_neg`` (mean of ``mask_features`` at the sampled
  positive / negative points, per object) used to pick the answer among the spatial queries;
* the per-level *spatial tokens* (features of the decoder's level ``i`` map at the sampled points,
  projected by ``mask_sptial_embed[i]``, plus ``pn_indicator`` row 0 for positive and 1 for
  negative points) that the spatial queries attend to.

Point coordinates are ``row / Hp`` and ``col / Wp`` (``Hp, Wp``: padded mask size) read with
``grid_sample(align_corners=True)``, exactly as the reference does. Bilinear sampling is linear,
so projecting the sampled vectors equals sampling the projected map; we project after sampling,
which avoids a full-map matmul per level.

A :class:`SpatialPrompt` only holds feature vectors, so a prompt built on one image can be
decoded on another: that is the referring-region ("example image") path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from .sampler import Sampler


@dataclass
class SpatialPrompt:
    """Encoded spatial prompts of a batch of images.

    query_pos / query_neg: (n_obj, B, C) mean prompt vectors (-1 rows for an object with no
        points in v1; zeros in v0).
    tokens: per decoder level, (N, B, C) spatial tokens (positive points first, then negative).
    token_padding: per level, (B, N) bool, True = padding.
    token_objects: per level, (B, N, 1) int64 object index of each token (-1 = padding); v1 only.
    """

    query_pos: Tensor
    query_neg: Tensor
    tokens: list[Tensor]
    token_padding: list[Tensor]
    token_objects: list[Tensor] | None

    @property
    def num_objects(self) -> int:
        return int(self.query_pos.shape[0])

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> SpatialPrompt:
        def mv(t: Tensor) -> Tensor:
            return t.to(device=device, dtype=dtype) if t.is_floating_point() else t.to(device)

        return SpatialPrompt(
            mv(self.query_pos),
            mv(self.query_neg),
            [mv(t) for t in self.tokens],
            [t.to(device) for t in self.token_padding],
            None if self.token_objects is None else [t.to(device) for t in self.token_objects],
        )


def point_sample(features: Tensor, points_xy: Tensor) -> Tensor:
    """Bilinear read of ``features`` (B, C, H, W) at ``points_xy`` (B, N, 2) in [0, 1] (x, y),
    with ``align_corners=True`` and zero padding outside. Returns (B, C, N)."""
    grid = (2.0 * points_xy - 1.0).unsqueeze(2)
    return F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=True).squeeze(3)


@dataclass
class PromptPixels:
    """The True pixels of a prompt mask (n_obj, Hp, Wp), listed once and sampled many times.

    points: (3, N) float32 rows (object index, row / Hp, col / Wp) in row-major order.
    probs: (N,) float32 sampling weights, 1 / (objects present * pixels of the pixel's object).
    num_objects: n_obj (mask rows, including empty ones).
    """

    points: Tensor
    probs: Tensor
    num_objects: int

    @classmethod
    def of(cls, mask: Tensor) -> PromptPixels:
        n_obj, h, w = mask.shape
        coords = mask.nonzero()
        points = (coords.float() / torch.tensor([1.0, h, w], device=mask.device)).t()
        obj = coords[:, 0]
        present, counts = obj.unique(return_counts=True)
        per_obj = torch.zeros(n_obj, dtype=torch.float32, device=mask.device)
        per_obj[present] = 1.0 / (len(present) * counts.float())
        return cls(points, per_obj[obj], n_obj)

    def __len__(self) -> int:
        return self.num_objects


def _pixels(mask: Tensor | PromptPixels) -> PromptPixels:
    return mask if isinstance(mask, PromptPixels) else PromptPixels.of(mask)


def sample_points_v1(mask: Tensor | PromptPixels, max_len: int, sampler: Sampler) -> Tensor:
    """Subsample the True pixels of ``mask`` (n_obj, Hp, Wp) bool, every object equally likely.

    Returns (3, n) float32 rows (object index, row / Hp, col / Wp), n = min(max_len, #pixels),
    kept in row-major order. Each pixel has weight 1 / (objects present * pixels of its object);
    one multinomial draw without replacement (always drawn, even when n = #pixels, so the random
    stream matches the reference). An empty mask gives (3, 0) and draws nothing.
    """
    px = _pixels(mask)
    n = px.probs.shape[0]
    if n == 0:
        return px.points
    idx = sampler.multinomial(px.probs, min(max_len, n), False).sort()[0].to(px.points.device)
    return px.points[:, idx]


def sample_points_v0(mask: Tensor | PromptPixels, max_len: int, sampler: Sampler) -> Tensor:
    """v0: all True pixels of ``mask`` (c, Hp, Wp) as (2, n) rows (row / Hp, col / Wp); when there
    are more than ``max_len`` a uniform random subset (``randperm`` order, not re-sorted)."""
    points = _pixels(mask).points[1:]
    if points.shape[1] <= max_len:
        return points
    idx = sampler.randperm(points.shape[1])[:max_len].to(points.device)
    return points[:, idx]


def _mean_prompt_v1(mask_features: Tensor, masks: list[PromptPixels], max_len: int, sampler: Sampler) -> Tensor:
    """(n_obj, B, C): per image and object, mean of mask_features over the sampled points."""
    pts = [sample_points_v1(m, max_len, sampler).t() for m in masks]
    padded = pad_sequence(pts, padding_value=-1).permute(1, 0, 2)  # (B, N, 3)
    feats = point_sample(mask_features, padded[:, :, 1:].flip(dims=(2,)).to(mask_features.dtype))
    rows = []
    for b, m in enumerate(masks):
        x = feats[b].t()  # (N, C)
        obj = padded[b, :, 0].long()
        per = []
        for n in range(len(m)):
            sel = obj == n
            per.append(x[sel].mean(0) if sel.any() else -torch.ones(x.shape[1], device=x.device, dtype=x.dtype))
        rows.append(torch.stack(per))
    return pad_sequence(rows, padding_value=-1).nan_to_num()


def _mean_prompt_v0(mask_features: Tensor, masks: list[PromptPixels], max_len: int, sampler: Sampler) -> Tensor:
    """(1, B, C): per image, mean of mask_features over the sampled points (0 if none)."""
    pts = [sample_points_v0(m, max_len, sampler).t() for m in masks]
    padded = pad_sequence(pts, padding_value=-1).permute(1, 0, 2)  # (B, N, 2)
    valid = padded.sum(-1) >= 0
    feats = point_sample(mask_features, padded.flip(dims=(2,)).to(mask_features.dtype))
    means = torch.stack([x.t()[v].mean(0, keepdim=True) for x, v in zip(feats, valid)])  # (B, 1, C)
    return means.transpose(0, 1).nan_to_num()


def encode_spatial_prompt(
    pos_masks: list[Tensor],
    neg_masks: list[Tensor],
    mask_features: Tensor,
    level_maps: list[Tensor],
    mask_spatial_embed: list[Tensor],
    pn_indicator: Tensor,
    max_spatial_len: list[int],
    sampler: Sampler,
    version: str = "v1",
) -> SpatialPrompt:
    """Encode bool prompt masks into a :class:`SpatialPrompt`.

    pos_masks / neg_masks: one bool tensor per image, (n_obj, Hp, Wp) (v1; v0: (1, Hp, Wp)).
    mask_features: (B, C, Hp/4, Wp/4). level_maps: the decoder's level inputs (B, C, h_i, w_i)
    (input projection + level embedding applied). mask_spatial_embed: per level (C, C).
    pn_indicator: (2, C). max_spatial_len: per level, and the last entry for the prompt vectors.

    Random draws, in the reference order: prompt vector pos (each image), neg (each image), then
    per level pos (each image) and neg (each image).
    """
    if len(pos_masks) != len(neg_masks):
        raise ValueError("need one positive and one negative mask per image")
    # List each mask's pixels once; they are sampled four times (prompt vector + three levels).
    pos_px = [PromptPixels.of(m) for m in pos_masks]
    neg_px = [PromptPixels.of(m) for m in neg_masks]
    if version == "v1":
        query_pos = _mean_prompt_v1(mask_features, pos_px, max_spatial_len[-1], sampler)
        query_neg = _mean_prompt_v1(mask_features, neg_px, max_spatial_len[-1], sampler)
    else:
        query_pos = _mean_prompt_v0(mask_features, pos_px, max_spatial_len[-1], sampler)
        query_neg = _mean_prompt_v0(mask_features, neg_px, max_spatial_len[-1], sampler)
    tokens, paddings, objects = [], [], []
    for i, level in enumerate(level_maps):
        if version == "v1":
            pos = [sample_points_v1(m, max_spatial_len[i], sampler).t() for m in pos_px]
            neg = [sample_points_v1(m, max_spatial_len[i], sampler).t() for m in neg_px]
            points = [torch.cat([p[:, 1:], q[:, 1:]]) for p, q in zip(pos, neg)]
            index = [torch.cat([p[:, :1], q[:, :1]]) for p, q in zip(pos, neg)]
            objects.append(pad_sequence(index, padding_value=-1).permute(1, 0, 2).long())
        else:
            pos = [sample_points_v0(m, max_spatial_len[i], sampler).t() for m in pos_px]
            neg = [sample_points_v0(m, max_spatial_len[i], sampler).t() for m in neg_px]
            points = [torch.cat([p, q]) for p, q in zip(pos, neg)]
        sign = [
            torch.cat([torch.ones(len(p), device=level.device), -torch.ones(len(q), device=level.device)])
            for p, q in zip(pos, neg)
        ]
        sign_padded = pad_sequence(sign, padding_value=0)  # (N, B)
        pts = pad_sequence(points, padding_value=-1).permute(1, 0, 2)  # (B, N, 2)
        padding = pts.sum(-1) < 0
        pts = pts.masked_fill(padding[..., None], 0.0)
        sampled = point_sample(level, pts.flip(dims=(2,)).to(level.dtype)).permute(2, 0, 1)  # (N, B, C)
        tok = sampled @ mask_spatial_embed[i]
        tok = tok + (sign_padded == 1)[..., None] * pn_indicator[0] + (sign_padded == -1)[..., None] * pn_indicator[1]
        tokens.append(tok)
        paddings.append(padding)
    return SpatialPrompt(query_pos, query_neg, tokens, paddings, objects if version == "v1" else None)
