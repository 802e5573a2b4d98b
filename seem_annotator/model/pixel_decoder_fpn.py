"""FPN pixel decoder with a transformer encoder on the coarsest level (`transformer_encoder_fpn`).

Used by the Focal SEEM models. Top-down over res5 -> res2:
res5 -> 1x1 `input_proj` -> transformer encoder (sine positions) -> 3x3 `layer_4`;
res4..res2: 1x1 lateral `adapter_k` + nearest-upsampled coarser output -> 3x3 `layer_k`.
The first three outputs (strides 32, 16, 8) are the multi-scale features for the SEEM decoder;
a 3x3 `mask_features` conv on the stride-4 output gives the per-pixel embeddings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from .position_encoding import PositionEmbeddingSine
from .transformer_encoder import TransformerEncoderOnly

NUM_DECODER_LEVELS = 3  # the SEEM decoder always reads three scales


def make_norm(norm: str, channels: int) -> nn.Module | None:
    """Normalisation layer for a decoder conv from its config name ("GN" or "" for none)."""
    if norm == "GN":
        return nn.GroupNorm(32, channels)
    if norm in ("", None):
        return None
    raise CheckpointError(f"Unsupported MODEL.ENCODER.NORM {norm!r}; this build supports 'GN' and ''.")


class Conv2dNorm(nn.Conv2d):
    """Conv2d followed by an optional `norm` submodule and activation (keys `weight`, `norm.weight`, ...)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        padding: int = 0,
        bias: bool = True,
        norm: nn.Module | None = None,
        activation: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        self.norm = norm
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


def sorted_features(
    names: list[str], channels: Mapping[str, int], strides: Mapping[str, int]
) -> list[tuple[str, int, int]]:
    """(name, channels, stride) for the named backbone outputs, finest first."""
    missing = [n for n in names if n not in channels]
    if missing:
        raise CheckpointError(f"MODEL.ENCODER.IN_FEATURES names backbone outputs it does not have: {missing}.")
    return sorted(((n, int(channels[n]), int(strides[n])) for n in names), key=lambda t: t[2])


class TransformerEncoderPixelDecoder(nn.Module):
    """See module docstring.

    Args:
        in_features: [(name, channels, stride)] finest first (e.g. res2..res5).
        conv_dim: width of all FPN convs and the transformer (d_model).
        mask_dim: channels of `mask_features`.
        norm: "GN" (GroupNorm(32), convs without bias) or "" (no norm, convs with bias).
        mask_on: build `mask_features` (the reference reads MODEL.DECODER.MASK, truthy).
    """

    def __init__(
        self,
        in_features: list[tuple[str, int, int]],
        conv_dim: int,
        mask_dim: int,
        norm: str,
        nheads: int,
        dim_feedforward: int,
        enc_layers: int,
        pre_norm: bool = False,
        mask_on: bool = True,
    ) -> None:
        super().__init__()
        self.in_features = [n for n, _, _ in in_features]
        use_bias = norm == ""
        n = len(in_features)
        # Registration order follows the reference (adapters/layers, mask_features, input_proj,
        # transformer, rebuilt last layer).
        for idx, (_, ch, _) in enumerate(in_features[:-1]):
            self.add_module(
                f"adapter_{idx + 1}", Conv2dNorm(ch, conv_dim, 1, bias=use_bias, norm=make_norm(norm, conv_dim))
            )
            self.add_module(
                f"layer_{idx + 1}",
                Conv2dNorm(conv_dim, conv_dim, 3, 1, bias=use_bias, norm=make_norm(norm, conv_dim), activation=F.relu),
            )
        self.mask_features = Conv2dNorm(conv_dim, mask_dim, 3, 1) if mask_on else None
        self.input_proj = Conv2dNorm(in_features[-1][1], conv_dim, 1)
        self.transformer = TransformerEncoderOnly(conv_dim, nheads, enc_layers, dim_feedforward, pre_norm)
        self.pe_layer = PositionEmbeddingSine(conv_dim // 2, normalize=True)
        self.add_module(
            f"layer_{n}",
            Conv2dNorm(conv_dim, conv_dim, 3, 1, bias=use_bias, norm=make_norm(norm, conv_dim), activation=F.relu),
        )
        for m in self.modules():
            if isinstance(m, Conv2dNorm):
                _c2_xavier_fill(m)
        # Top-down order (coarsest first): lateral None for the transformer level.
        self._lateral = [None] + [f"adapter_{i}" for i in range(n - 1, 0, -1)]
        self._output = [f"layer_{i}" for i in range(n, 0, -1)]

    def forward_features(
        self, features: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor | None, torch.Tensor, list[torch.Tensor]]:
        """features: backbone outputs {"res2": (B, C2, H/4, W/4), ...}.

        Returns (mask_features (B, mask_dim, H/4, W/4), transformer_encoder_features
        (B, conv_dim, H/32, W/32), multi_scale_features [(B, conv_dim, H/32, W/32),
        (.., H/16, W/16), (.., H/8, W/8)]), low to high resolution.
        """
        multi_scale: list[torch.Tensor] = []
        y: torch.Tensor | None = None
        encoded: torch.Tensor | None = None
        for idx, name in enumerate(reversed(self.in_features)):
            x = features[name]
            lateral, output = self._lateral[idx], getattr(self, self._output[idx])
            if lateral is None:
                encoded = self.transformer(self.input_proj(x), self.pe_layer(x))
                y = output(encoded)
            else:
                cur = getattr(self, lateral)(x)
                y = output(cur + F.interpolate(y, size=cur.shape[-2:], mode="nearest"))
            if len(multi_scale) < NUM_DECODER_LEVELS:
                multi_scale.append(y)
        mask = self.mask_features(y) if self.mask_features is not None else None
        assert encoded is not None
        return mask, encoded, multi_scale

    def forward(
        self, features: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor | None, torch.Tensor, list[torch.Tensor]]:
        return self.forward_features(features)


def _c2_xavier_fill(conv: nn.Conv2d) -> None:
    """Kaiming-uniform(a=1) weights and zero bias (detectron2's "c2_xavier_fill"); meta-safe."""
    nn.init.kaiming_uniform_(conv.weight, a=1)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def build_fpn_pixel_decoder(
    cfg: Mapping[str, Any], channels: Mapping[str, int], strides: Mapping[str, int]
) -> TransformerEncoderPixelDecoder:
    """Build from cfg["MODEL"]["ENCODER"] / ["DECODER"] and the backbone output shapes."""
    enc, dec = cfg["MODEL"]["ENCODER"], cfg["MODEL"]["DECODER"]
    return TransformerEncoderPixelDecoder(
        sorted_features(list(enc["IN_FEATURES"]), channels, strides),
        conv_dim=int(enc["CONVS_DIM"]),
        mask_dim=int(enc["MASK_DIM"]),
        norm=str(enc.get("NORM", "GN") or ""),
        nheads=int(dec["NHEADS"]),
        dim_feedforward=int(dec["DIM_FEEDFORWARD"]),
        enc_layers=int(enc["TRANSFORMER_ENC_LAYERS"]),
        pre_norm=bool(dec.get("PRE_NORM", False)),
        mask_on=bool(dec.get("MASK", True)),
    )
