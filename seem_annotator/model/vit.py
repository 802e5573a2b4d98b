"""SAM ViT image encoder (ViTDet-style plain ViT with windowed and global attention), no neck.

Patch embedding (16x16 conv), absolute position embedding of the fixed pretraining grid
(img_size / patch_size squared: the input must be exactly img_size x img_size), then `depth` blocks;
blocks not listed in `global_attn_indexes` attend inside non-overlapping `window_size` windows
(the token grid zero-padded to a multiple of the window). Attention adds decomposed relative
position biases (one table per axis). SEEM replaces SAM's own neck by `SimpleFPN`
(see `simple_fpn.py` and `backbone.py`).

Attention runs through `F.scaled_dot_product_attention` with the relative-position bias as an
additive mask, which is numerically the reference's explicit softmax(q k^T * scale + bias) v.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

# Elements of relative-position bias materialised at once per attention call (4 heads of the
# 64x64-token global attention).
_BIAS_BUDGET = 4 * 4096 * 4096


def get_rel_pos(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """Relative-position embeddings for every (query, key) index pair along one axis.

    rel_pos: (L, C) table; resized (linear interpolation) to 2*max(q_size, k_size)-1 rows if it has
    another length. Returns (q_size, k_size, C).
    """
    max_rel_dist = 2 * max(q_size, k_size) - 1
    if rel_pos.shape[0] != max_rel_dist:
        rel_pos = F.interpolate(rel_pos.t()[None], size=max_rel_dist, mode="linear")[0].t()
    # Coordinates of the shorter axis are stretched to the longer one before differencing.
    q_coords = torch.arange(q_size, device=rel_pos.device)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size, device=rel_pos.device)[None, :] * max(q_size / k_size, 1.0)
    relative = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    return rel_pos[relative.long()]


def window_partition(x: torch.Tensor, window: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, H, W, C) -> ((B * nWin, window, window, C), padded (Hp, Wp)); zero padding right/bottom."""
    b, h, w, c = x.shape
    pad_h, pad_w = (window - h % window) % window, (window - w % window) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    x = x.view(b, hp // window, window, wp // window, window, c).transpose(2, 3)
    return x.reshape(-1, window, window, c), (hp, wp)


def window_unpartition(
    windows: torch.Tensor, window: int, padded_hw: tuple[int, int], hw: tuple[int, int]
) -> torch.Tensor:
    """Inverse of `window_partition`: (B * nWin, window, window, C) -> (B, H, W, C)."""
    hp, wp = padded_hw
    h, w = hw
    b = windows.shape[0] // ((hp // window) * (wp // window))
    x = windows.view(b, hp // window, wp // window, window, window, -1).transpose(2, 3)
    x = x.reshape(b, hp, wp, -1)
    if hp > h or wp > w:
        x = x[:, :h, :w, :]
    return x


class Attention(nn.Module):
    """Multi-head self-attention over a (B, H, W, C) grid with decomposed relative positions.

    Args:
        dim: channels; num_heads: heads (head_dim = dim // num_heads).
        use_rel_pos: add the relative-position bias; needs `input_size` = the (H, W) this block
            sees (the window, or the whole grid for global blocks), which sizes the tables
            `rel_pos_h` (2H-1, head_dim) and `rel_pos_w` (2W-1, head_dim).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qkv_bias: bool = True,
        use_rel_pos: bool = False,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        if use_rel_pos:
            if input_size is None:
                raise ValueError("Attention: relative positions need input_size")
            # SAM initialises the tables to zero (rel_pos_zero_init); checkpoints overwrite them.
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, H, W, C) -> (B, H, W, C)."""
        b, h, w, c = x.shape
        nh = self.num_heads
        # (B, HW, 3, nh, hd) -> 3 x (B, nh, HW, hd)
        q, k, v = self.qkv(x).view(b, h * w, 3, nh, c // nh).permute(2, 0, 3, 1, 4).unbind(0)
        if not self.use_rel_pos:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            rh = get_rel_pos(h, h, self.rel_pos_h)  # (h, kh, hd)
            rw = get_rel_pos(w, w, self.rel_pos_w)  # (w, kw, hd)
            # The bias is (HW x HW) per head: for global attention over the 64x64 grid that is
            # 64 MiB per head, so it is built a few heads at a time.
            step = max(1, min(nh, _BIAS_BUDGET // max(1, (h * w) ** 2)))
            outs = []
            for i in range(0, nh, step):
                qs = q[:, i : i + step]
                rq = qs.reshape(b, -1, h, w, qs.shape[-1])
                rel_h = torch.einsum("bnhwc,hkc->bnhwk", rq, rh)
                rel_w = torch.einsum("bnhwc,wkc->bnhwk", rq, rw)
                bias = (rel_h[..., :, None] + rel_w[..., None, :]).reshape(b, -1, h * w, h * w)
                outs.append(F.scaled_dot_product_attention(qs, k[:, i : i + step], v[:, i : i + step], attn_mask=bias))
            out = outs[0] if len(outs) == 1 else torch.cat(outs, 1)
        return self.proj(out.transpose(1, 2).reshape(b, h, w, c))


class MLPBlock(nn.Module):
    """lin1 -> GELU -> lin2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin2(self.act(self.lin1(x)))


class Block(nn.Module):
    """Pre-norm transformer block; window_size 0 means global attention."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        qkv_bias: bool,
        norm_eps: float,
        use_rel_pos: bool,
        window_size: int,
        input_size: tuple[int, int],
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(
            dim,
            num_heads,
            qkv_bias=qkv_bias,
            use_rel_pos=use_rel_pos,
            input_size=input_size if window_size == 0 else (window_size, window_size),
        )
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = MLPBlock(dim, int(dim * mlp_ratio))
        self.window_size = window_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, H, W, C) -> (B, H, W, C)."""
        y = self.norm1(x)
        if self.window_size > 0:
            h, w = y.shape[1:3]
            y, padded = window_partition(y, self.window_size)
            y = window_unpartition(self.attn(y), self.window_size, padded, (h, w))
        else:
            y = self.attn(y)
        x = x + y
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Non-overlapping patch_size x patch_size conv; returns channels-last (B, H/p, W/p, D)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


class ImageEncoderViT(nn.Module):
    """SAM image encoder trunk: (B, in_chans, img_size, img_size) -> (B, embed_dim, img_size/p, img_size/p).

    Args mirror SAM's `ImageEncoderViT` (without `out_chans`: the neck is not built here).
    """

    def __init__(
        self,
        img_size: int = 1024,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_eps: float = 1e-6,
        use_abs_pos: bool = True,
        use_rel_pos: bool = True,
        window_size: int = 14,
        global_attn_indexes: Sequence[int] = (2, 5, 8, 11),
    ) -> None:
        super().__init__()
        self.img_size = img_size
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, embed_dim)) if use_abs_pos else None
        self.blocks = nn.ModuleList(
            Block(
                embed_dim,
                num_heads,
                mlp_ratio,
                qkv_bias,
                norm_eps,
                use_rel_pos,
                0 if i in global_attn_indexes else window_size,
                (grid, grid),
            )
            for i in range(depth)
        )

    def forward_trunk(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, img_size, img_size) -> (B, embed_dim, grid, grid), NCHW shape, channels_last memory."""
        if x.dim() != 4 or tuple(x.shape[-2:]) != (self.img_size, self.img_size):
            raise ValueError(
                f"the SAM ViT backbone needs a (B, C, {self.img_size}, {self.img_size}) input "
                f"(pad the image to that size), got shape {tuple(x.shape)}"
            )
        x = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return x.permute(0, 3, 1, 2)
