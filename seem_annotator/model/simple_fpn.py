"""SimpleFPN: the neck SEEM puts on the SAM ViT to get a 4-level pyramid from one stride-16 map.

Each level is a small conv stack on the ViT output (stride 16): two 2x transposed convs for
stride 4, one for stride 8, a 1x1 conv for stride 16 and a 2x2 stride-2 conv for stride 32, each
with GroupNorm(1, C) (i.e. LayerNorm over C, H, W) and GELU. Parameter names (`down_4.0`,
`down_4.1`, ...) are Sequential indices, as in the checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class SimpleFPN(nn.Module):
    """(B, in_dim, H, W) at stride 16 -> {"res2": (B, out_dims[0], 4H, 4W), "res3": (B, out_dims[1], 2H, 2W),
    "res4": (B, out_dims[2], H, W), "res5": (B, out_dims[3], H/2, W/2)}.

    Internal widths (as the reference derives them): down_4 uses max(2*out_dims[0], in_dim//2) then
    half of it; down_8 uses max(out_dims[1], in_dim//2); down_32 uses max(out_dims[3], 2*in_dim).
    """

    def __init__(self, in_dim: int = 768, out_dims: Sequence[int] = (128, 256, 512, 1024)) -> None:
        super().__init__()
        c4 = max(out_dims[0] * 2, in_dim // 2)
        self.down_4 = nn.Sequential(
            nn.ConvTranspose2d(in_dim, c4, 2, stride=2),
            nn.GroupNorm(1, c4),
            nn.GELU(),
            nn.ConvTranspose2d(c4, c4 // 2, 2, stride=2),
            nn.GroupNorm(1, c4 // 2),
            nn.Conv2d(c4 // 2, out_dims[0], 1),
            nn.GroupNorm(1, out_dims[0]),
            nn.GELU(),
        )
        c8 = max(out_dims[1], in_dim // 2)
        self.down_8 = nn.Sequential(
            nn.ConvTranspose2d(in_dim, c8, 2, stride=2),
            nn.GroupNorm(1, c8),
            nn.Conv2d(c8, out_dims[1], 1),
            nn.GroupNorm(1, out_dims[1]),
            nn.GELU(),
        )
        self.down_16 = nn.Sequential(
            nn.Conv2d(in_dim, out_dims[2], 1),
            nn.GroupNorm(1, out_dims[2]),
            nn.GELU(),
        )
        c32 = max(out_dims[3], in_dim * 2)
        self.down_32 = nn.Sequential(
            nn.Conv2d(in_dim, c32, 2, stride=2),
            nn.GroupNorm(1, c32),
            nn.Conv2d(c32, out_dims[3], 1),
            nn.GroupNorm(1, out_dims[3]),
            nn.GELU(),
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            "res2": self.down_4(x),
            "res3": self.down_8(x),
            "res4": self.down_16(x),
            "res5": self.down_32(x),
        }
