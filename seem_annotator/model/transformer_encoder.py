"""Plain transformer encoder (DETR style) used on the coarsest map by the FPN pixel decoder.

Each layer: self-attention with the positional encoding added to queries and keys (not values),
residual, LayerNorm, then a ReLU FFN, residual, LayerNorm (post-norm; pre-norm optional). The
attention module is a `torch.nn.MultiheadAttention` so parameter names match the checkpoints
(`self_attn.in_proj_weight`, ...), but it is evaluated with `F.scaled_dot_product_attention`
on batch-first tensors, which avoids the (L, B, C) transposes and the explicit attention matrix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def multihead_attention(
    attn: nn.MultiheadAttention,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Evaluate `attn` (no dropout) on batch-first tensors.

    query: (B, Lq, C); key, value: (B, Lk, C); key_padding_mask: optional (B, Lk) bool,
    True = ignore. Returns (B, Lq, C).
    """
    b, lq, c = query.shape
    lk = key.shape[1]
    nh = attn.num_heads
    w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
    if attn.in_proj_bias is not None:
        b_q, b_k, b_v = attn.in_proj_bias.chunk(3)
    else:
        b_q = b_k = b_v = None
    if query is key:
        # One matmul for q and k when they share the input (the usual src + pos case).
        qk = F.linear(query, attn.in_proj_weight[: 2 * c], None if b_q is None else attn.in_proj_bias[: 2 * c])
        q, k = qk.split(c, dim=-1)
    else:
        q, k = F.linear(query, w_q, b_q), F.linear(key, w_k, b_k)
    v = F.linear(value, w_v, b_v)
    q = q.view(b, lq, nh, c // nh).transpose(1, 2)
    k = k.view(b, lk, nh, c // nh).transpose(1, 2)
    v = v.view(b, lk, nh, c // nh).transpose(1, 2)
    mask = None
    if key_padding_mask is not None:
        mask = ~key_padding_mask[:, None, None, :]  # SDPA bool masks mark positions to keep
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    return attn.out_proj(out.transpose(1, 2).reshape(b, lq, c))


class TransformerEncoderLayer(nn.Module):
    """One encoder layer on (B, L, C) tokens; `normalize_before` selects pre-norm."""

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        normalize_before: bool = False,
    ) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.normalize_before = normalize_before

    def forward(
        self,
        src: torch.Tensor,
        pos: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """src, pos: (B, L, C); key_padding_mask: optional (B, L) bool, True = padding."""
        if self.normalize_before:
            s = self.norm1(src)
            qk = s if pos is None else s + pos
            src = src + multihead_attention(self.self_attn, qk, qk, s, key_padding_mask)
            return src + self.linear2(F.relu(self.linear1(self.norm2(src))))
        qk = src if pos is None else src + pos
        src = self.norm1(src + multihead_attention(self.self_attn, qk, qk, src, key_padding_mask))
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


class TransformerEncoder(nn.Module):
    """A stack of `num_layers` layers (`layers.{i}`), with a final LayerNorm (`norm`) only for pre-norm."""

    def __init__(
        self,
        d_model: int,
        nhead: int,
        num_layers: int,
        dim_feedforward: int = 2048,
        normalize_before: bool = False,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(d_model, nhead, dim_feedforward, normalize_before) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model) if normalize_before else None

    def forward(
        self,
        src: torch.Tensor,
        pos: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """src, pos: (B, L, C) -> (B, L, C)."""
        for layer in self.layers:
            src = layer(src, pos, key_padding_mask)
        return self.norm(src) if self.norm is not None else src


class TransformerEncoderOnly(nn.Module):
    """Encoder over a feature map: (B, C, H, W) + pos (B, C, H, W) -> (B, C, H, W).

    Holds the stack as `encoder` so keys read `transformer.encoder.layers.{i}...` in the decoder.
    """

    def __init__(
        self,
        d_model: int = 512,
        nhead: int = 8,
        num_encoder_layers: int = 6,
        dim_feedforward: int = 2048,
        normalize_before: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = TransformerEncoder(d_model, nhead, num_encoder_layers, dim_feedforward, normalize_before)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(
        self, src: torch.Tensor, pos: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """src, pos: (B, C, H, W); mask: optional (B, H, W) bool padding mask. Returns (B, C, H, W)."""
        b, c, h, w = src.shape
        tokens = src.flatten(2).transpose(1, 2)
        pos_t = pos.flatten(2).transpose(1, 2)
        key_padding = mask.flatten(1) if mask is not None else None
        out = self.encoder(tokens, pos_t, key_padding)
        return out.transpose(1, 2).reshape(b, c, h, w)
