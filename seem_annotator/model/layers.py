"""Transformer building blocks of the SEEM decoder.

All layers are post-norm and sequence-first: tensors are ``(L, B, C)`` (tokens, batch, channels),
the layout the official decoder uses, so that attention masks are ``(B * heads, L, S)``.
Parameter names match the released checkpoints (``self_attn.in_proj_weight``, ``norm.weight``, ...).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MultiHeadAttention(nn.Module):
    """Multi-head attention with ``nn.MultiheadAttention``'s parameter layout.

    Masked positions get zero weight; a query whose keys are all masked gets a zero output
    (softmax NaNs are replaced by 0, as the official self-attention does) instead of NaN.
    """

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def project_kv(self, key: Tensor, value: Tensor, heads_first: bool = False) -> tuple[Tensor, Tensor]:
        """Key/value projections of key/value (S, B, C): (S, B, C) each, or with ``heads_first``
        contiguous (B, heads, S, C/heads), the layout the attention kernel reads. Cache the latter
        when the same memory is attended many times (the image features of the cross-attention):
        it saves a strided copy of both per call."""
        _, w_k, w_v = self.in_proj_weight.chunk(3)
        _, b_k, b_v = self.in_proj_bias.chunk(3)
        k, v = F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)
        if heads_first:
            S, B, C = k.shape
            h = self.num_heads
            k, v = (t.reshape(S, B, h, C // h).permute(1, 2, 0, 3).contiguous() for t in (k, v))
        return k, v

    def forward(self, query: Tensor, key: Tensor | None, value: Tensor | None, attn_mask: Tensor | None = None,
                kv: tuple[Tensor, Tensor] | None = None, no_empty_rows: bool = False) -> Tensor:
        """query (L, B, C), key/value (S, B, C) (or ``kv`` = :meth:`project_kv` of them, either layout),
        attn_mask bool (B, L, S) shared by the heads or (B*heads, L, S), True = blocked.
        Returns (L, B, C).

        ``no_empty_rows``: the caller guarantees every query may attend to some key, which
        allows the fused attention kernel.
        """
        L, B, C = query.shape
        h, d = self.num_heads, C // self.num_heads
        w_q, b_q = self.in_proj_weight[:C], self.in_proj_bias[:C]
        if kv is None:
            assert key is not None and value is not None
            kv = self.project_kv(key, value)
        k_proj, v_proj = kv
        q = F.linear(query, w_q, b_q).reshape(L, B * h, d).transpose(0, 1)
        if k_proj.ndim == 4:  # heads first (B, h, S, d)
            S = k_proj.shape[2]
            k, v = k_proj.view(B * h, S, d), v_proj.view(B * h, S, d)
        else:
            S = k_proj.shape[0]
            k = k_proj.reshape(S, B * h, d).transpose(0, 1)
            v = v_proj.reshape(S, B * h, d).transpose(0, 1)
        if no_empty_rows:
            allowed = None if attn_mask is None else ~attn_mask.view(B, -1, L, S)
            out = F.scaled_dot_product_attention(q.view(B, h, L, d), k.view(B, h, S, d), v.view(B, h, S, d),
                                                 attn_mask=allowed)
            return self.out_proj(out.permute(2, 0, 1, 3).reshape(L, B, C))
        weights = torch.bmm(q * (1.0 / math.sqrt(d)), k.transpose(1, 2))
        if attn_mask is not None:
            weights = weights.view(B, h, L, S).masked_fill(attn_mask.view(B, -1, L, S), float("-inf"))
            weights = weights.view(B * h, L, S)
        # Fully blocked rows give NaN after softmax; the reference maps them to zero attention.
        weights = torch.softmax(weights, dim=-1).nan_to_num()
        out = torch.bmm(weights, v).transpose(0, 1).reshape(L, B, C)
        return self.out_proj(out)


class SelfAttentionLayer(nn.Module):
    """``tgt = norm(tgt + attn(q=k=tgt+pos, v=tgt))``."""

    def __init__(self, d_model: int, nhead: int) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, nhead)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, tgt: Tensor, tgt_mask: Tensor | None = None, query_pos: Tensor | None = None,
                rows: Tensor | None = None, tail_kv: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """tgt/query_pos (L, B, C); tgt_mask bool (B or B*heads, L, L). Returns (L, B, C), or only the
        updated ``rows`` (R,) of it, (R, B, C), when the other rows' outputs are not needed.
        ``tail_kv``: ``self_attn.project_kv`` of the last T rows, (T, B, C) each, computed ahead (the
        rows' own values are then only placeholders; they must not be among ``rows``)."""
        q = tgt if query_pos is None else tgt + query_pos
        kv = None
        if tail_kv is not None:
            t = tail_kv[0].shape[0]
            k, v = self.self_attn.project_kv(q[:-t], tgt[:-t])
            kv = torch.cat([k, tail_kv[0]]), torch.cat([v, tail_kv[1]])
        if rows is None:
            return self.norm(tgt + self.self_attn(q, q, tgt, attn_mask=tgt_mask, kv=kv))
        mask = None if tgt_mask is None else tgt_mask[:, rows]
        return self.norm(tgt[rows] + self.self_attn(q[rows], q, tgt, attn_mask=mask, kv=kv))


PRUNE_SHARE = 0.5  # leave out keys no query may see when at most this share of them is visible


class CrossAttentionLayer(nn.Module):
    """``tgt = norm(tgt + attn(q=tgt+query_pos, k=memory+pos, v=memory))``.

    Masked attention gives a blocked key exactly zero weight, so the keys that every query is
    blocked from are left out (read neither as keys nor as values) when they are most of the
    image: the few queries of an object look only at its region.
    """

    def __init__(self, d_model: int, nhead: int) -> None:
        super().__init__()
        self.multihead_attn = MultiHeadAttention(d_model, nhead)
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        memory_mask: Tensor | None = None,
        pos: Tensor | None = None,
        query_pos: Tensor | None = None,
        kv: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """tgt (L, B, C), memory (S, B, C), memory_mask bool (B or B*heads, L, S). ``kv``: cached
        ``multihead_attn.project_kv(memory + pos, memory)``. Returns (L, B, C)."""
        q = tgt if query_pos is None else tgt + query_pos
        keep = _seen_keys(memory_mask)
        if keep is not None:
            memory_mask = memory_mask[:, :, keep]
            if kv is not None:  # heads first (B, heads, S, d) or (S, B, C)
                dim = 2 if kv[0].ndim == 4 else 0
                kv = (kv[0].index_select(dim, keep), kv[1].index_select(dim, keep))
            else:
                memory = memory.index_select(0, keep)
                pos = None if pos is None else pos.index_select(0, keep)
        if kv is None:
            kv = self.multihead_attn.project_kv(memory if pos is None else memory + pos, memory)
        # memory_mask must leave every query some key: the decoder unblocks fully blocked rows.
        return self.norm(tgt + self.multihead_attn(q, None, None, attn_mask=memory_mask, kv=kv,
                                                   no_empty_rows=True))


def _seen_keys(mask: Tensor | None) -> Tensor | None:
    """Indices of the keys some query may see, for a one-image (1, L, S) mask where they are at
    most PRUNE_SHARE of the keys; None when pruning would not pay."""
    if mask is None or mask.shape[0] != 1:
        return None
    seen = ~mask[0].all(0)
    if int(seen.sum()) > PRUNE_SHARE * seen.numel():
        return None
    return seen.nonzero().squeeze(1)


class FFNLayer(nn.Module):
    """``tgt = norm(tgt + linear2(relu(linear1(tgt))))``."""

    def __init__(self, d_model: int, dim_feedforward: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, tgt: Tensor) -> Tensor:
        return self.norm(tgt + self.linear2(F.relu(self.linear1(tgt))))


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them (keys ``layers.{i}.weight``)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        dims_in = [input_dim] + [hidden_dim] * (num_layers - 1)
        dims_out = [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(dims_in, dims_out))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x
