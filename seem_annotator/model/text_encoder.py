"""CLIP-style text transformer used by SEEM's language encoder.

Parameter names match the official ``lang_encoder`` (``token_embedding``, ``positional_embedding``,
``resblocks.{i}.{attn,ln_1,mlp.c_fc,mlp.c_proj,ln_2}``, ``ln_final``) so released checkpoints load
unchanged. Numerics follow the reference: causal (autoregressive) self-attention with no padding
mask, TF-style LayerNorm (eps 1e-12 inside the square root, statistics in float32), QuickGELU.
"""

from __future__ import annotations

import torch
from torch import nn


class TFLayerNorm(nn.Module):
    """LayerNorm with epsilon inside the square root, normalised in float32.

    The affine part runs in the input dtype, as the reference does, so fp16 autocast matches it.
    Shapes: ``x`` [..., D] -> [..., D].
    """

    def __init__(self, dim: int, eps: float = 1e-12) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        xf = x.float()
        mean = xf.mean(-1, keepdim=True)
        var = (xf - mean).pow(2).mean(-1, keepdim=True)
        xf = (xf - mean) / torch.sqrt(var + self.eps)
        return self.weight * xf.to(dtype) + self.bias


class QuickGELU(nn.Module):
    """``x * sigmoid(1.702 x)``, CLIP's GELU approximation (the weights were trained with it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class TextMLP(nn.Module):
    """``c_fc`` (D -> 4D), QuickGELU, ``c_proj`` (4D -> D)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(dim, dim * 4)
        self.gelu = QuickGELU()
        self.c_proj = nn.Linear(dim * 4, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class ResidualAttentionBlock(nn.Module):
    """Pre-norm block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``. ``x`` is [L, B, D]."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads)
        self.ln_1 = TFLayerNorm(dim)
        self.mlp = TextMLP(dim)
        self.ln_2 = TFLayerNorm(dim)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None,
                key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                          need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class TextTransformer(nn.Module):
    """Token ids -> per-token hidden states.

    Args:
        context_length: maximum sequence length L (77); ``positional_embedding`` is [L, width].
        vocab_size: number of token ids (49408 for CLIP BPE).
        width, layers, heads: transformer size (512, 12, 8 in SEEM).
        autoregressive: causal mask (True in every SEEM config). When False, padding positions are
            masked with ``attention_mask`` instead, as the reference does.
    """

    def __init__(self, context_length: int, vocab_size: int, width: int, layers: int, heads: int,
                 autoregressive: bool = True) -> None:
        super().__init__()
        self.context_length = context_length
        self.width = width
        self.autoregressive = autoregressive
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads) for _ in range(layers)])
        self.ln_final = TFLayerNorm(width)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Random init in the reference's style (truncated normal 0.02, zero biases); a loaded
        checkpoint replaces all of it. A no-op on the meta device."""
        nn.init.trunc_normal_(self.positional_embedding, std=0.02)
        nn.init.trunc_normal_(self.token_embedding.weight, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.MultiheadAttention):
                nn.init.trunc_normal_(module.in_proj_weight, std=0.02)
                nn.init.zeros_(module.in_proj_bias)
                nn.init.zeros_(module.out_proj.bias)

    def causal_mask(self, length: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Additive [length, length] mask: 0 on and below the diagonal, -inf above."""
        return torch.full((length, length), float("-inf"), device=device, dtype=dtype).triu_(1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``input_ids`` [B, L] (L <= context_length) -> hidden states [B, L, width] after ``ln_final``.

        With the causal mask, position i depends only on tokens 0..i, so callers that need only the
        first positions may pass a shortened sequence and get the same values there.
        """
        length = input_ids.shape[1]
        if length > self.context_length:
            raise ValueError(f"token sequence of length {length} exceeds the context length {self.context_length}")
        x = self.token_embedding(input_ids) + self.positional_embedding[:length]
        x = x.permute(1, 0, 2)  # [L, B, D]: nn.MultiheadAttention is sequence-first here
        if self.autoregressive:
            mask, padding = self.causal_mask(length, x.device, x.dtype), None
        else:
            mask = None
            padding = (attention_mask == 0) if attention_mask is not None else None
        for block in self.resblocks:
            x = block(x, mask, padding)
        return self.ln_final(x.permute(1, 0, 2))


def l2_normalize(x: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """``x / (|x| + eps)`` over the last dim (SEEM's normalisation, not ``F.normalize``'s clamp)."""
    return x / (x.norm(dim=-1, keepdim=True) + eps)


__all__ = ["TFLayerNorm", "QuickGELU", "ResidualAttentionBlock", "TextTransformer", "l2_normalize"]
