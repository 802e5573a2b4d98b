"""Sine positional encoding for 2-D feature maps (the DETR / MaskFormer variant SEEM uses).

The pixel decoders and the SEEM decoder both call `PositionEmbeddingSine(hidden_dim // 2,
normalize=True)` on a feature map and add the result to keys/queries.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class PositionEmbeddingSine(nn.Module):
    """Fixed sin/cos encoding of the (row, column) index of every position of a feature map.

    Rows and columns are counted from 1 over the unmasked positions; with `normalize` they are
    divided by the last count (+1e-6) and multiplied by `scale` (2*pi by default). Channel pair
    (2i, 2i+1) holds (sin, cos) of `coord / temperature ** (2i / num_pos_feats)`; the output is the
    row encoding followed by the column encoding. No parameters, no buffers.

    Args:
        num_pos_feats: channels per axis; the output has `2 * num_pos_feats` channels.
        temperature: base of the geometric frequency progression.
        normalize: rescale coordinates to (0, scale].
        scale: range after normalisation; only allowed with `normalize=True`.
    """

    def __init__(
        self,
        num_pos_feats: int = 64,
        temperature: float = 10000,
        normalize: bool = False,
        scale: float | None = None,
    ) -> None:
        super().__init__()
        if scale is not None and not normalize:
            raise ValueError("PositionEmbeddingSine: `scale` needs normalize=True")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, C, H, W) (only its shape, device and dtype are used); mask: optional (B, H, W) bool,
        True = padding. Returns (B, 2 * num_pos_feats, H, W) in x's dtype."""
        b, _, h, w = x.shape
        device = x.device
        # Computed in float32 and cast at the end: under fp16 autocast the coordinates would lose
        # precision before the sin/cos.
        if mask is None:
            # Cumulative counts of an all-valid mask are just 1..H and 1..W.
            y_embed = torch.arange(1, h + 1, device=device, dtype=torch.float32).view(1, h, 1).expand(b, h, w)
            x_embed = torch.arange(1, w + 1, device=device, dtype=torch.float32).view(1, 1, w).expand(b, h, w)
        else:
            valid = ~mask
            y_embed = valid.cumsum(1, dtype=torch.float32)
            x_embed = valid.cumsum(2, dtype=torch.float32)
        if self.normalize:
            eps = 1e-6
            y_embed = y_embed / (y_embed[:, -1:, :] + eps) * self.scale
            x_embed = x_embed / (x_embed[:, :, -1:] + eps) * self.scale

        dim_t = torch.arange(self.num_pos_feats, device=device, dtype=torch.float32)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.num_pos_feats)

        pos_x = x_embed[:, :, :, None] / dim_t
        pos_y = y_embed[:, :, :, None] / dim_t
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
        pos = torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)
        return pos.to(x.dtype)

    def extra_repr(self) -> str:
        return (
            f"num_pos_feats={self.num_pos_feats}, temperature={self.temperature}, "
            f"normalize={self.normalize}, scale={self.scale:.4f}"
        )
