"""FocalNet backbone (focal modulation networks), in the two variants SEEM ships.

* `focal_dw` (Focal-T SEEM models): every block has a 3x3 depthwise conv with residual before the
  modulation (`dw1`) and before the MLP (`dw2`); post-norms sit after each residual sum; the stem
  conv pads by 3.
* `focal` (Focal-L SEEM models): no depthwise convs; post-norms are applied to the branch output
  before the residual sum; the stem conv pads by 2.

Inside the blocks tokens are kept channels-last (B, H, W, C) so that the linear layers run on
contiguous memory; the depthwise convs read the permuted views directly (channels_last memory
format), which avoids the permute/contiguous round trips of the reference code.
Inference only: drop path and dropout are not implemented (they are identities in eval mode).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

VARIANTS = ("focal_dw", "focal")


def _nchw(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) -> (B, C, H, W) view (channels_last memory when x is contiguous)."""
    return x.permute(0, 3, 1, 2)


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H, W, C) view."""
    return x.permute(0, 2, 3, 1)


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 on the last dimension."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class FocalModulation(nn.Module):
    """Focal modulation: a query modulated by gated multi-level depthwise context.

    `f` projects to (query C, context C, gates L+1); context goes through L depthwise convs
    (kernel `focal_window + 2k`, no bias, GELU), each level and a global average level are summed
    with their gates; `h` (1x1 conv) maps the aggregate to the modulator; `proj` is the output.
    """

    def __init__(
        self,
        dim: int,
        focal_level: int,
        focal_window: int,
        focal_factor: int = 2,
        scaling_modulator: bool = False,
        use_postln_in_modulation: bool = False,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.focal_level = focal_level
        self.scaling_modulator = scaling_modulator
        self.use_postln_in_modulation = use_postln_in_modulation
        self.f = nn.Linear(dim, 2 * dim + focal_level + 1)
        self.h = nn.Conv2d(dim, dim, kernel_size=1)
        self.act = nn.GELU()
        self.proj = nn.Linear(dim, dim)
        self.focal_layers = nn.ModuleList()
        for k in range(focal_level):
            kernel = focal_factor * k + focal_window
            self.focal_layers.append(
                nn.Sequential(
                    nn.Conv2d(dim, dim, kernel, padding=kernel // 2, groups=dim, bias=False),
                    nn.GELU(),
                )
            )
        if use_postln_in_modulation:
            self.ln = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, H, W, C) -> (B, H, W, C)."""
        c, lv = self.dim, self.focal_level
        y = self.f(x)
        q, gates = y[..., :c], y[..., 2 * c :]
        # Everything below stays channels-last: the depthwise convs get NCHW-shaped views of
        # contiguous NHWC tensors (channels_last memory) and give the same layout back.
        ctx = y[..., c : 2 * c].contiguous()
        ctx_all = torch.zeros_like(ctx)
        for k, layer in enumerate(self.focal_layers):
            ctx = _nhwc(layer(_nchw(ctx)))
            ctx_all.addcmul_(ctx, gates[..., k : k + 1])
        ctx_global = self.act(ctx.mean((1, 2), keepdim=True))
        ctx_all.addcmul_(ctx_global, gates[..., lv:])
        # `h` is a 1x1 conv, i.e. a linear map over channels; the 1/(L+1) scaling is folded into
        # its weight instead of a separate pass over the feature map.
        h_weight = self.h.weight.flatten(1)
        if self.scaling_modulator:
            h_weight = h_weight / (lv + 1)
        modulator = F.linear(ctx_all, h_weight, self.h.bias)
        out = q * modulator
        if self.use_postln_in_modulation:
            out = self.ln(out)
        return self.proj(out)


class FocalModulationBlock(nn.Module):
    """One FocalNet block; `variant` selects the focal_dw or focal layout (see module docstring)."""

    def __init__(
        self,
        dim: int,
        variant: str,
        mlp_ratio: float,
        focal_level: int,
        focal_window: int,
        use_postln: bool,
        use_postln_in_modulation: bool,
        scaling_modulator: bool,
        use_layerscale: bool,
        layerscale_value: float = 1e-4,
    ) -> None:
        super().__init__()
        self.variant = variant
        self.use_postln = use_postln
        # Parameter registration order follows the reference so state_dict key order matches.
        if variant == "focal_dw":
            self.dw1 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim)
        self.modulation = FocalModulation(
            dim,
            focal_level=focal_level,
            focal_window=focal_window,
            scaling_modulator=scaling_modulator,
            use_postln_in_modulation=use_postln_in_modulation,
        )
        if variant == "focal_dw":
            self.dw2 = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        if use_layerscale:
            self.gamma_1 = nn.Parameter(torch.full((dim,), layerscale_value))
            self.gamma_2 = nn.Parameter(torch.full((dim,), layerscale_value))
        else:
            self.gamma_1 = self.gamma_2 = None

    @staticmethod
    def _residual(x: torch.Tensor, y: torch.Tensor, gamma: torch.Tensor | None) -> torch.Tensor:
        """x + gamma * y in one fused op (layer scale); x + y without layer scale."""
        return x + y if gamma is None else torch.addcmul(x, gamma, y)

    @staticmethod
    def _dw_residual(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
        """x + depthwise_conv(x) for contiguous channels-last x; returns contiguous channels-last."""
        return x + _nhwc(conv(_nchw(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, H, W, C) contiguous -> (B, H, W, C)."""
        g1, g2 = self.gamma_1, self.gamma_2
        if self.variant == "focal_dw":
            x = self._dw_residual(x, self.dw1)
            x = self._residual(x, self.modulation(x if self.use_postln else self.norm1(x)), g1)
            if self.use_postln:
                x = self.norm1(x)
            x = self._dw_residual(x, self.dw2)
            if self.use_postln:
                return self.norm2(self._residual(x, self.mlp(x), g2))
            return self._residual(x, self.mlp(self.norm2(x)), g2)

        if self.use_postln:
            x = self._residual(x, self.norm1(self.modulation(x)), g1)
            return self._residual(x, self.norm2(self.mlp(x)), g2)
        x = self._residual(x, self.modulation(self.norm1(x)), g1)
        return self._residual(x, self.mlp(self.norm2(x)), g2)


class PatchEmbed(nn.Module):
    """Strided conv embedding + optional LayerNorm over channels.

    Stem (`is_stem`, conv embed): 7x7 stride 4, padding 3 (focal_dw) or 2 (focal). Downsample:
    3x3 stride 2 padding 1. Without conv embed: a patch_size x patch_size stride patch_size conv.
    The input is zero-padded right/bottom to a multiple of patch_size first.
    """

    def __init__(
        self,
        patch_size: int,
        in_chans: int,
        embed_dim: int,
        use_norm: bool,
        use_conv_embed: bool,
        is_stem: bool,
        stem_padding: int,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        if use_conv_embed:
            kernel, stride, padding = (7, 4, stem_padding) if is_stem else (3, 2, 1)
        else:
            kernel, stride, padding = patch_size, patch_size, 0
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel, stride=stride, padding=padding)
        self.norm = nn.LayerNorm(embed_dim) if use_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> (B, H', W', D) channels-last, contiguous."""
        h, w = x.shape[-2:]
        p = self.patch_size
        if h % p or w % p:
            x = F.pad(x, (0, (p - w % p) % p, 0, (p - h % p) % p))
        x = _nhwc(self.proj(x)).contiguous()
        return self.norm(x) if self.norm is not None else x


class BasicLayer(nn.Module):
    """One stage: `depth` blocks then (all stages but the last) a 2x PatchEmbed downsample."""

    def __init__(self, dim: int, depth: int, downsample: PatchEmbed | None, **block_kwargs) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(FocalModulationBlock(dim, **block_kwargs) for _ in range(depth))
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, H, W, C) -> (stage output (B, H, W, C), input of the next stage)."""
        for blk in self.blocks:
            x = blk(x)
        if self.downsample is None:
            return x, x
        return x, self.downsample(_nchw(x))


class FocalNet(nn.Module):
    """FocalNet feature extractor returning res2..res5 (strides 4, 8, 16, 32).

    Attributes follow the backbone contract: `out_channels`, `out_strides` (dicts keyed by
    "res2".."res5"), `size_divisibility` (32).
    """

    size_divisibility = 32

    def __init__(
        self,
        variant: str = "focal_dw",
        patch_size: int = 4,
        in_chans: int = 3,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        mlp_ratio: float = 4.0,
        focal_levels: Sequence[int] = (3, 3, 3, 3),
        focal_windows: Sequence[int] = (3, 3, 3, 3),
        patch_norm: bool = True,
        use_conv_embed: bool = True,
        use_postln: bool = True,
        use_postln_in_modulation: bool = False,
        scaling_modulator: bool = True,
        use_layerscale: bool = True,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        out_features: Sequence[str] = ("res2", "res3", "res4", "res5"),
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown FocalNet variant {variant!r}; expected one of {VARIANTS}")
        num_stages = len(depths)
        stem_padding = 3 if variant == "focal_dw" else 2
        self.patch_embed = PatchEmbed(
            patch_size, in_chans, embed_dim, patch_norm, use_conv_embed, True, stem_padding
        )
        self.num_features = [int(embed_dim * 2**i) for i in range(num_stages)]
        self.layers = nn.ModuleList()
        for i in range(num_stages):
            dim = self.num_features[i]
            down = None
            if i < num_stages - 1:
                down = PatchEmbed(2, dim, 2 * dim, True, use_conv_embed, False, stem_padding)
            self.layers.append(
                BasicLayer(
                    dim,
                    depths[i],
                    down,
                    variant=variant,
                    mlp_ratio=mlp_ratio,
                    focal_level=focal_levels[i],
                    focal_window=focal_windows[i],
                    use_postln=use_postln,
                    use_postln_in_modulation=use_postln_in_modulation,
                    scaling_modulator=scaling_modulator,
                    use_layerscale=use_layerscale,
                )
            )
        self.out_indices = list(out_indices)
        for i in self.out_indices:
            self.add_module(f"norm{i}", nn.LayerNorm(self.num_features[i]))
        self.out_features = list(out_features)
        names = [f"res{i + 2}" for i in range(num_stages)]
        self.out_strides = {n: 4 * 2**i for i, n in enumerate(names) if n in self.out_features}
        self.out_channels = {n: self.num_features[i] for i, n in enumerate(names) if n in self.out_features}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (B, 3, H, W) normalised image, H and W multiples of 32.

        Returns {"res2": (B, C0, H/4, W/4), ..., "res5": (B, 8*C0, H/32, W/32)}; the tensors are
        NCHW-shaped in channels_last memory format.
        """
        if x.dim() != 4:
            raise ValueError(f"FocalNet expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
        x = self.patch_embed(x)
        outs: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.layers):
            x_out, x = layer(x)
            name = f"res{i + 2}"
            if i in self.out_indices and name in self.out_features:
                outs[name] = _nchw(getattr(self, f"norm{i}")(x_out))
        return outs
