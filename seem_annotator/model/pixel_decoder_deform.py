"""Multi-scale deformable-attention pixel decoder (`transformer_encoder_deform`, Mask2Former style).

Used by the SAM-ViT SEEM models. res5, res4, res3 (coarse to fine) are projected to conv_dim
(1x1 conv + GroupNorm(32)), encoded jointly by a stack of deformable-attention layers (queries =
every position of every level, positions = sine encoding + a learned per-level embedding,
reference points = pixel centres), then the finer backbone levels down to the common stride are
added FPN-style (1x1 lateral + bilinear upsampling, 3x3 output conv). `mask_features` is a 1x1 conv
on the finest map. Always computed in float32, also under autocast (as the reference does).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .ms_deform_attn import MSDeformAttn
from .pixel_decoder_fpn import NUM_DECODER_LEVELS, Conv2dNorm, _c2_xavier_fill, make_norm, sorted_features
from .position_encoding import PositionEmbeddingSine

DEFORM_FFN_DIM = 1024  # hard-coded in the reference, independent of MODEL.DECODER.DIM_FEEDFORWARD
DEFORM_POINTS = 4


class MSDeformAttnEncoderLayer(nn.Module):
    """Post-norm layer: deformable self-attention, then a ReLU FFN; tokens (N, S, C)."""

    def __init__(self, d_model: int, d_ffn: int, n_levels: int, n_heads: int, n_points: int) -> None:
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(
        self,
        src: torch.Tensor,
        pos: torch.Tensor,
        reference_points: torch.Tensor,
        spatial_shapes: Sequence[tuple[int, int]],
        padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        src = self.norm1(src + self.self_attn(src + pos, reference_points, src, spatial_shapes, padding_mask))
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


class MSDeformAttnEncoder(nn.Module):
    """`layers.{i}`: a stack of MSDeformAttnEncoderLayer."""

    def __init__(self, num_layers: int, **layer_kwargs: Any) -> None:
        super().__init__()
        self.layers = nn.ModuleList(MSDeformAttnEncoderLayer(**layer_kwargs) for _ in range(num_layers))

    @staticmethod
    def reference_points(
        spatial_shapes: Sequence[tuple[int, int]], device: torch.device, dtype: torch.dtype
    ) -> torch.Tensor:
        """Pixel-centre coordinates (x, y) / (W, H) of every position of every level: (1, S, L, 2).

        Without padding masks all valid ratios are 1, so one point serves every level.
        """
        refs = []
        for h, w in spatial_shapes:
            ys = torch.linspace(0.5, h - 0.5, h, dtype=torch.float32, device=device) / h
            xs = torch.linspace(0.5, w - 0.5, w, dtype=torch.float32, device=device) / w
            ref_y, ref_x = torch.meshgrid(ys, xs, indexing="ij")
            refs.append(torch.stack((ref_x.reshape(-1), ref_y.reshape(-1)), -1))
        ref = torch.cat(refs, 0).to(dtype)
        return ref[None, :, None, :].expand(1, -1, len(spatial_shapes), 2)

    def forward(
        self, src: torch.Tensor, pos: torch.Tensor, spatial_shapes: Sequence[tuple[int, int]]
    ) -> torch.Tensor:
        """src, pos: (N, S, C) -> (N, S, C)."""
        ref = self.reference_points(spatial_shapes, src.device, src.dtype)
        for layer in self.layers:
            src = layer(src, pos, ref, spatial_shapes)
        return src


class MSDeformAttnTransformerEncoderOnly(nn.Module):
    """Flattens the levels, adds `level_embed` to the positions and runs the encoder."""

    def __init__(
        self, d_model: int, nhead: int, num_encoder_layers: int, dim_feedforward: int, num_feature_levels: int
    ) -> None:
        super().__init__()
        self.encoder = MSDeformAttnEncoder(
            num_encoder_layers,
            d_model=d_model,
            d_ffn=dim_feedforward,
            n_levels=num_feature_levels,
            n_heads=nhead,
            n_points=DEFORM_POINTS,
        )
        self.level_embed = nn.Parameter(torch.empty(num_feature_levels, d_model))
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m._reset_parameters()
        nn.init.normal_(self.level_embed)

    def forward(
        self, srcs: Sequence[torch.Tensor], pos_embeds: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """srcs, pos_embeds: per level (N, C, H_l, W_l). Returns ((N, S, C), [(H_l, W_l)])."""
        shapes = [(int(s.shape[2]), int(s.shape[3])) for s in srcs]
        src_flat = torch.cat([s.flatten(2).transpose(1, 2) for s in srcs], 1)
        pos_flat = torch.cat(
            [p.flatten(2).transpose(1, 2) + self.level_embed[i].view(1, 1, -1) for i, p in enumerate(pos_embeds)], 1
        )
        return self.encoder(src_flat, pos_flat, shapes), shapes


class MSDeformAttnPixelDecoder(nn.Module):
    """See module docstring.

    Args:
        in_features: [(name, channels, stride)] of all decoder inputs, finest first.
        transformer_in_features: names of the levels the deformable encoder reads (e.g. res3..res5).
        conv_dim / mask_dim / norm: as in the FPN decoder; nheads: attention heads;
        enc_layers: encoder depth; common_stride: stride of `mask_features` (4).
    """

    def __init__(
        self,
        in_features: list[tuple[str, int, int]],
        transformer_in_features: list[str],
        conv_dim: int,
        mask_dim: int,
        norm: str,
        nheads: int,
        enc_layers: int,
        common_stride: int = 4,
        dim_feedforward: int = DEFORM_FFN_DIM,
    ) -> None:
        super().__init__()
        self.in_features = [n for n, _, _ in in_features]
        t_feats = [f for f in in_features if f[0] in transformer_in_features]
        self.transformer_in_features = [n for n, _, _ in t_feats]
        # Levels coarse -> fine (res5 first), as the encoder and the SEEM decoder see them.
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(ch, conv_dim, 1), nn.GroupNorm(32, conv_dim)) for _, ch, _ in reversed(t_feats)
        )
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight, gain=1)
            nn.init.zeros_(proj[0].bias)
        self.transformer = MSDeformAttnTransformerEncoderOnly(conv_dim, nheads, enc_layers, dim_feedforward, len(t_feats))
        self.pe_layer = PositionEmbeddingSine(conv_dim // 2, normalize=True)
        self.mask_features = Conv2dNorm(conv_dim, mask_dim, 1)
        _c2_xavier_fill(self.mask_features)
        self.num_fpn_levels = int(math.log2(min(s for _, _, s in t_feats)) - math.log2(common_stride))
        use_bias = norm == ""
        for idx, (_, ch, _) in enumerate(in_features[: self.num_fpn_levels]):
            lateral = Conv2dNorm(ch, conv_dim, 1, bias=use_bias, norm=make_norm(norm, conv_dim))
            output = Conv2dNorm(
                conv_dim, conv_dim, 3, 1, bias=use_bias, norm=make_norm(norm, conv_dim), activation=F.relu
            )
            _c2_xavier_fill(lateral)
            _c2_xavier_fill(output)
            self.add_module(f"adapter_{idx + 1}", lateral)
            self.add_module(f"layer_{idx + 1}", output)

    def forward_features(
        self, features: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """features: backbone outputs {"res2": (B, C2, H/4, W/4), ...}, any float dtype.

        Returns float32 (mask_features (B, mask_dim, H/4, W/4), transformer_encoder_features
        (B, conv_dim, H/32, W/32), multi_scale_features [strides 32, 16, 8]), low to high resolution.
        """
        device_type = next(iter(features.values())).device.type
        with torch.autocast(device_type=device_type, enabled=False):
            return self._forward_fp32(features)

    def _forward_fp32(
        self, features: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        srcs, pos = [], []
        for idx, name in enumerate(reversed(self.transformer_in_features)):
            x = features[name].float()
            srcs.append(self.input_proj[idx](x))
            pos.append(self.pe_layer(x))
        memory, shapes = self.transformer(srcs, pos)
        b = memory.shape[0]
        out: list[torch.Tensor] = []
        for z, (h, w) in zip(memory.split([h * w for h, w in shapes], dim=1), shapes, strict=True):
            out.append(z.transpose(1, 2).reshape(b, -1, h, w))
        for idx in range(self.num_fpn_levels - 1, -1, -1):
            x = features[self.in_features[idx]].float()
            cur = getattr(self, f"adapter_{idx + 1}")(x)
            y = cur + F.interpolate(out[-1], size=cur.shape[-2:], mode="bilinear", align_corners=False)
            out.append(getattr(self, f"layer_{idx + 1}")(y))
        return self.mask_features(out[-1]), out[0], out[:NUM_DECODER_LEVELS]

    def forward(
        self, features: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        return self.forward_features(features)


def build_deform_pixel_decoder(
    cfg: Mapping[str, Any], channels: Mapping[str, int], strides: Mapping[str, int]
) -> MSDeformAttnPixelDecoder:
    """Build from cfg["MODEL"]["ENCODER"] / ["DECODER"] and the backbone output shapes."""
    enc, dec = cfg["MODEL"]["ENCODER"], cfg["MODEL"]["DECODER"]
    return MSDeformAttnPixelDecoder(
        sorted_features(list(enc["IN_FEATURES"]), channels, strides),
        transformer_in_features=list(enc["DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES"]),
        conv_dim=int(enc["CONVS_DIM"]),
        mask_dim=int(enc["MASK_DIM"]),
        norm=str(enc.get("NORM", "GN") or ""),
        nheads=int(dec["NHEADS"]),
        enc_layers=int(enc["TRANSFORMER_ENC_LAYERS"]),
        common_stride=int(enc.get("COMMON_STRIDE", 4)),
    )
