"""The spatial memories' own path through the SEEM decoder (memory across rounds).

From the second round on, 32 memory vectors run through the decoder beside the spatial queries:
at every layer they cross-attend to the image inside the previous round's mask, self-attend among
the memories of their own object and go through the FFN. Nothing they compute depends on this
round's prompts: the queries read them (as self-attention keys and values) but no query or token
ever writes to them (``SELF_ATTENTION`` lets memories see only memories). Their per-layer states
are therefore a function of the image features, the previous mask and the memory-to-object draws
alone. :func:`memory_stream` computes them once; the decoder reads them, and a predictor can
compute the next round's stream as soon as it has answered this one.

Cross-attention of a memory only sees the keys inside its object's previous mask; the
cross-attention layer reads only those (:class:`~.layers.CrossAttentionLayer`), so a stream costs
less the smaller the object is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .sampler import Sampler


@dataclass
class MemoryStream:
    """The memories' states for one (image, previous mask, draws).

    prev_mask: (B, c, H/4, W/4) the previous round's mask logits it was computed from.
    objects: per decoder layer, (M,) the object each memory follows (v1 draws), or None (v0: all
        follow channel 0).
    states: per decoder layer, (M, B, C) the memories after that layer's cross-attention (what the
        queries attend to in the layer's self-attention).
    keys_values: per decoder layer, that layer's self-attention key/value projections of
        ``states`` (M, B, C) each: the queries read only these.
    """

    prev_mask: Tensor
    objects: list[Tensor | None]
    states: list[Tensor]
    keys_values: list[tuple[Tensor, Tensor]]

    def matches(self, prev_mask: Tensor, objects: Sequence[Tensor | None]) -> bool:
        """True when this stream is the one for ``prev_mask`` and these draws."""
        if len(objects) != len(self.objects) or self.prev_mask.shape != prev_mask.shape:
            return False
        for a, b in zip(self.objects, objects):
            if (a is None) != (b is None) or (a is not None and not torch.equal(a, b)):
                return False
        return self.prev_mask is prev_mask or torch.equal(self.prev_mask, prev_mask.to(self.prev_mask.device))

    def nbytes(self) -> int:
        tensors = [*self.states, *(t for kv in self.keys_values for t in kv), self.prev_mask]
        return sum(t.numel() * t.element_size() for t in tensors)


def draw_memory_objects(sampler: Sampler, version: str, num_objects: int, num_memories: int,
                        num_layers: int) -> list[Tensor | None]:
    """The memory-to-object assignment of every layer, drawn in the decoder's order.

    v1: per layer, each memory follows an object drawn uniformly (sorted, as the reference does);
    v0: no draws (None per layer).
    """
    if version == "v0":
        return [None] * num_layers
    probs = torch.full((num_objects,), 1.0 / (num_memories // num_objects), dtype=torch.float32)
    return [sampler.multinomial(probs, num_memories, True).sort()[0] for _ in range(num_layers)]


def memory_mask(prev_mask: Tensor, size: tuple[int, int], objects: Tensor | None, num_memories: int,
                dtype: torch.dtype) -> Tensor:
    """(B, M, h*w) cross-attention mask (True = blocked) of the memories over a level of ``size``:
    each memory sees where its object's previous mask is positive; a memory whose mask is empty
    sees everything (the decoder's rule for fully blocked rows)."""
    prev = F.interpolate(prev_mask.to(dtype), size, mode="bilinear", align_corners=False)
    blocked = prev.sigmoid().flatten(2) < 0.5  # (B, c, hw)
    mask = blocked[:, :1].expand(-1, num_memories, -1) if objects is None else blocked[:, objects.to(blocked.device)]
    return mask.masked_fill(mask.all(-1, keepdim=True), False)


def memory_stream(decoder, inputs, prev_mask: Tensor, objects: Sequence[Tensor | None]) -> MemoryStream:
    """Run the memories through every layer of ``decoder`` (a :class:`~.seem_decoder.SEEMDecoder`)
    on ``inputs`` (its :class:`~.seem_decoder.DecoderInputs`) -> :class:`MemoryStream`."""
    bs = inputs.batch
    m = decoder.layout.num_memories
    out = decoder.spatial_featured.weight.unsqueeze(1).repeat(1, bs, 1)
    pos = decoder.spatial_embed.weight.unsqueeze(1).repeat(1, bs, 1)
    states, keys_values = [], []
    for i in range(decoder.num_layers):
        level = i % decoder.num_feature_levels
        mask = memory_mask(prev_mask, inputs.sizes[level], objects[i], m, out.dtype)
        out = decoder.transformer_cross_attention_layers[i](
            out, inputs.src[level], memory_mask=mask, pos=inputs.pos[level], query_pos=pos,
            kv=None if inputs.kv is None else inputs.kv[i])
        states.append(out)
        self_attn = decoder.transformer_self_attention_layers[i]
        keys_values.append(self_attn.self_attn.project_kv(out + pos, out))
        if i == decoder.num_layers - 1:
            break  # after the last layer only the queries are read
        obj = objects[i]
        self_mask = None
        if obj is not None and bool((obj != obj[0]).any()):  # memories see their own object's only
            self_mask = (obj[:, None] != obj[None, :]).to(out.device)[None].expand(bs, -1, -1)
        out = self_attn(out, tgt_mask=self_mask, query_pos=pos)
        out = decoder.transformer_ffn_layers[i](out)
    return MemoryStream(prev_mask, list(objects), states, keys_values)

