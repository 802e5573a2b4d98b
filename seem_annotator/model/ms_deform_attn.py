"""Multi-scale deformable attention (Deformable DETR), pure PyTorch.

Every query looks at `n_points` learned sampling locations around its reference point on each of
`n_levels` feature maps, per head; the sampled values (bilinear, zero outside the map) are summed
with softmax weights over levels x points. No compiled extension: sampling is
`F.grid_sample(align_corners=False, padding_mode="zeros")`, which is exactly the interpolation of
the CUDA kernel the reference ships (pixel centres at (i + 0.5) / size).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def ms_deform_attn_core(
    value: torch.Tensor,
    spatial_shapes: Sequence[tuple[int, int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Weighted bilinear sampling of multi-level values.

    value: (N, S, M, D) with S = sum(H_l * W_l), levels concatenated row-major in `spatial_shapes`
        order; spatial_shapes: [(H_l, W_l)] as Python ints;
    sampling_locations: (N, Lq, M, L, P, 2) normalised (x, y) in [0, 1] (0/1 = outer pixel edges);
    attention_weights: (N, Lq, M, L, P), already softmax-normalised over L*P.
    Returns (N, Lq, M * D).

    On CPU this uses a gather formulation (`ms_deform_attn_core_gather`, about twice as fast);
    elsewhere the grid_sample formulation (`ms_deform_attn_core_grid`). Both compute the same sum.
    """
    if value.device.type == "cpu":
        return ms_deform_attn_core_gather(value, spatial_shapes, sampling_locations, attention_weights)
    return ms_deform_attn_core_grid(value, spatial_shapes, sampling_locations, attention_weights)


def ms_deform_attn_core_grid(
    value: torch.Tensor,
    spatial_shapes: Sequence[tuple[int, int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """`ms_deform_attn_core` with one `F.grid_sample` per level, then the weighted sum over points."""
    n, _, m, d = value.shape
    _, lq, _, n_levels, p, _ = sampling_locations.shape
    grids = 2 * sampling_locations - 1
    out: torch.Tensor | None = None
    start = 0
    for lvl, (h, w) in enumerate(spatial_shapes):
        # (N, HW, M, D) -> (N*M, D, H, W)
        v = value[:, start : start + h * w].permute(0, 2, 3, 1).reshape(n * m, d, h, w)
        start += h * w
        # (N, Lq, M, P, 2) -> (N*M, Lq, P, 2)
        g = grids[:, :, :, lvl].transpose(1, 2).reshape(n * m, lq, p, 2)
        sampled = F.grid_sample(v, g, mode="bilinear", padding_mode="zeros", align_corners=False)
        # (N, Lq, M, P) -> (N*M, 1, Lq, P)
        wts = attention_weights[:, :, :, lvl].transpose(1, 2).reshape(n * m, 1, lq, p)
        term = (sampled * wts).sum(-1)  # (N*M, D, Lq)
        out = term if out is None else out + term
    assert out is not None
    return out.view(n, m * d, lq).transpose(1, 2)


def ms_deform_attn_core_gather(
    value: torch.Tensor,
    spatial_shapes: Sequence[tuple[int, int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """`ms_deform_attn_core` as one weighted gather-sum.

    Each sampling point contributes its 4 bilinear corners; the corner weight (bilinear weight x
    attention weight, 0 for corners outside the map) and the row of the corner in a flat
    (N*M*S, D) value table make one bag of L*P*4 entries per (batch, query, head), summed by
    `F.embedding_bag(mode="sum", per_sample_weights=...)` without materialising the samples.
    """
    n, s, m, d = value.shape
    _, lq, _, n_levels, p, _ = sampling_locations.shape
    dev, dt = value.device, sampling_locations.dtype
    table = value.permute(0, 2, 1, 3).reshape(n * m * s, d)
    sizes = torch.tensor(spatial_shapes, device=dev)  # (L, 2) rows (H, W)
    level_start = torch.tensor([0] + [h * w for h, w in spatial_shapes[:-1]], device=dev).cumsum(0)
    shape5 = (1, 1, 1, n_levels, 1)
    h_l, w_l = sizes[:, 0].view(shape5), sizes[:, 1].view(shape5)
    # Pixel centres sit at (i + 0.5) / size (grid_sample with align_corners=False).
    px = sampling_locations[..., 0] * w_l.to(dt) - 0.5
    py = sampling_locations[..., 1] * h_l.to(dt) - 0.5
    x0f, y0f = px.floor(), py.floor()
    fx, fy = px - x0f, py - y0f
    x0, y0 = x0f.long(), y0f.long()

    def axis(c0: torch.Tensor, frac: torch.Tensor, size: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        # (clamped coordinate, weight with out-of-map corners zeroed) for the two neighbours.
        out = []
        for c, wgt in ((c0, 1 - frac), (c0 + 1, frac)):
            inside = (c >= 0) & (c < size)
            out.append((torch.minimum(c.clamp(min=0), size - 1), wgt * inside))
        return out

    xs, ys = axis(x0, fx, w_l), axis(y0, fy, h_l)
    head = torch.arange(m, device=dev).view(1, 1, m, 1, 1)
    base = (torch.arange(n, device=dev).view(n, 1, 1, 1, 1) * m + head) * s + level_start.view(shape5)
    idx = torch.empty(*px.shape, 4, dtype=torch.long, device=dev)
    wts = torch.empty(*px.shape, 4, dtype=dt, device=dev)
    k = 0
    for cy, wy in ys:
        row = base + cy * w_l
        aw = attention_weights * wy
        for cx, wx in xs:
            idx[..., k] = row + cx
            wts[..., k] = aw * wx
            k += 1
    bags = n * lq * m
    out = F.embedding_bag(
        idx.view(bags, n_levels * p * 4), table, per_sample_weights=wts.view(bags, -1).to(table.dtype), mode="sum"
    )
    return out.view(n, lq, m * d)


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention module (parameter names as in the checkpoints).

    Args:
        d_model: channels C; n_levels: feature levels L; n_heads: heads M (C % M == 0);
        n_points: sampling points P per head and level.
    """

    def __init__(self, d_model: int = 256, n_levels: int = 4, n_heads: int = 8, n_points: int = 4) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"MSDeformAttn: d_model {d_model} is not divisible by n_heads {n_heads}")
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        # Deformable-DETR init: offsets start on a ring of directions (one per head), growing
        # with the point index; uniform attention. Tensor ops only, so it also runs on "meta".
        nn.init.zeros_(self.sampling_offsets.weight)
        dev = self.sampling_offsets.bias.device
        thetas = torch.arange(self.n_heads, dtype=torch.float32, device=dev) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]
        scale = torch.arange(1, self.n_points + 1, dtype=torch.float32, device=dev).view(1, 1, -1, 1)
        grid = grid.view(self.n_heads, 1, 1, 2).expand(-1, self.n_levels, self.n_points, -1) * scale
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(
        self,
        query: torch.Tensor,
        reference_points: torch.Tensor,
        input_flatten: torch.Tensor,
        spatial_shapes: Sequence[tuple[int, int]],
        padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """query: (N, Lq, C); reference_points: (N or 1, Lq, L, 2) normalised (x, y);
        input_flatten: (N, S, C) levels concatenated; spatial_shapes: [(H_l, W_l)];
        padding_mask: optional (N, S) bool, True = padding (its values are zeroed).
        Returns (N, Lq, C)."""
        n, lq, _ = query.shape
        s = input_flatten.shape[1]
        if sum(h * w for h, w in spatial_shapes) != s:
            raise ValueError("MSDeformAttn: spatial_shapes do not add up to the input length")
        m, lv, p = self.n_heads, self.n_levels, self.n_points
        value = self.value_proj(input_flatten)
        if padding_mask is not None:
            value = value.masked_fill(padding_mask[..., None], 0.0)
        value = value.view(n, s, m, self.d_model // m)
        offsets = self.sampling_offsets(query).view(n, lq, m, lv, p, 2)
        weights = F.softmax(self.attention_weights(query).view(n, lq, m, lv * p), -1).view(n, lq, m, lv, p)
        # Offsets are in pixels of each level: divide by (W_l, H_l).
        normalizer = torch.tensor(
            [[w, h] for h, w in spatial_shapes], dtype=query.dtype, device=query.device
        )
        locations = reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
        return self.output_proj(ms_deform_attn_core(value, spatial_shapes, locations, weights))
