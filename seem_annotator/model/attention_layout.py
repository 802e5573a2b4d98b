"""Bookkeeping of the SEEM decoder's query groups (config ``ATTENTION_ARCH``).

The decoder runs one transformer over several *groups* of vectors, each named
``<kind>_<name>``: queries (``queries_object``, ``queries_grounding``, ``queries_spatial``),
tokens (``tokens_grounding``, ``tokens_spatial``) and memories (``memories_spatial``).
``ATTENTION_ARCH`` says which groups cross-attend to the image (``CROSS_ATTENTION``), which
groups each group may self-attend to (``SELF_ATTENTION``), which token groups carry padding
(``MASKING``); the order of its keys is the concatenation order. :class:`AttentionLayout` reads
that once; :class:`GroupState` holds one forward pass's groups and builds both attention masks.

Layout versions: ``v0`` (one object per batch element; memories follow the single previous
mask) and ``v1`` (several objects per image: spatial queries, tokens and memories only see
those of their own object, memories are assigned to objects at random).

Masks are bool, True = blocked, shaped (B, queries, keys) and shared by all attention heads
(the reference repeats them per head; they are identical).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


class AttentionLayout:
    """Static part of ``ATTENTION_ARCH``: group names, orders and permitted interactions."""

    def __init__(self, arch: Mapping[str, Any], version: str) -> None:
        if version not in ("v0", "v1"):
            raise ValueError(f"unknown SEEM attention layout {version!r} (expected v0 or v1)")
        self.version = version
        self.cross_order: list[str] = [
            f"{kind}_{name}"
            for kind, entries in arch["CROSS_ATTENTION"].items()
            for name, on in entries.items()
            if on
        ]
        self.self_pairs: dict[str, list[str]] = {
            f"{kind}_{name}": list(targets)
            for kind, entries in arch["SELF_ATTENTION"].items()
            for name, targets in entries.items()
        }
        self.masking: list[str] = list(arch.get("MASKING", []))
        self.num_memories: int = int(arch.get("SPATIAL_MEMORIES", 32))
        self.query_number: int = int(arch.get("QUERY_NUMBER", 3))


def spans(names: list[str], sizes: Mapping[str, int]) -> dict[str, tuple[int, int]]:
    """Start/end index of each group in the concatenation of ``names``."""
    out, start = {}, 0
    for n in names:
        out[n] = (start, start + sizes[n])
        start += sizes[n]
    return out


@dataclass
class Group:
    """One group's vectors: output/pos (N, B, C); attn_mask (B, N, HW) from the last
    prediction (cross-attention groups); padding (B, N) True = padded (token groups)."""

    output: Tensor
    pos: Tensor
    attn_mask: Tensor | None = None
    padding: Tensor | None = None


@dataclass
class GroupState:
    """The groups of one decoder forward and the per-object bookkeeping of v1."""

    layout: AttentionLayout
    groups: dict[str, Group] = field(default_factory=dict)
    memories_on: bool = False
    memories_external: bool = False  # memory states come from a precomputed stream (memory_stream)
    num_objects: int = 0  # spatial objects (v1)
    token_objects: Tensor | None = None  # (B, N, 1) object of each spatial token, current level
    memory_objects: Tensor | None = None  # (M,) object of each memory, current layer (v1)

    def _on(self, name: str) -> bool:
        return name in self.groups and (name != "memories_spatial" or self.memories_on)

    def cross_names(self) -> list[str]:
        """Groups that cross-attend in the pass (not precomputed memories)."""
        return [n for n in self.layout.cross_order
                if self._on(n) and not (n == "memories_spatial" and self.memories_external)]

    def self_names(self) -> list[str]:
        return [n for n, t in self.layout.self_pairs.items() if t and self._on(n)]

    def concat(self, names: list[str]) -> tuple[Tensor, Tensor, dict[str, tuple[int, int]]]:
        """Concatenate outputs and positions of ``names`` -> ((N, B, C), (N, B, C), spans)."""
        output = torch.cat([self.groups[n].output for n in names])
        pos = torch.cat([self.groups[n].pos for n in names])
        return output, pos, spans(names, {n: self.groups[n].output.shape[0] for n in names})

    def split(self, output: Tensor, index: Mapping[str, tuple[int, int]]) -> None:
        for n, (a, b) in index.items():
            self.groups[n].output = output[a:b]

    def spatial_query_objects(self, device: torch.device) -> Tensor:
        """(Ns,) object index of each v1 spatial query (consecutive groups of QUERY_NUMBER)."""
        return torch.arange(self.num_objects, device=device).repeat_interleave(self.layout.query_number)

    # -- cross-attention -------------------------------------------------------------------
    def cross_attn_mask(self, names: list[str], memory_mask: Tensor | None = None) -> Tensor:
        """(B, N, h*w) mask for the groups ``names`` over the next level: query groups use their
        own previous prediction, memories ``memory_mask`` (:func:`.memory_stream.memory_mask`).
        Fully blocked rows are unblocked."""
        mask = torch.cat([memory_mask if n == "memories_spatial" else self.groups[n].attn_mask for n in names],
                         dim=1)
        return mask.masked_fill(mask.all(-1, keepdim=True), False)

    # -- self-attention --------------------------------------------------------------------
    def self_attn_mask(self, names: list[str], index: Mapping[str, tuple[int, int]], batch: int,
                       device: torch.device) -> Tensor:
        """(B, N, N) self-attention mask over the concatenation of ``names``."""
        total = max(b for _, b in index.values())
        mask = torch.ones(batch, total, total, dtype=torch.bool, device=device)
        masking = self.layout.masking
        pairs = []
        for k1, targets in self.layout.self_pairs.items():
            for k2 in targets:
                if k1 not in index or k2 not in index:
                    continue
                if (k1 in masking or k2 in masking) and k1 != k2:
                    pairs.append((k1, k2))
                mask[:, slice(*index[k1]), slice(*index[k2])] = False
        # Padded tokens neither attend nor are attended within their own group ...
        for k in masking:
            if k in index and self.groups[k].padding is not None:
                pad = self.groups[k].padding
                block = mask[:, slice(*index[k]), slice(*index[k])]
                block[pad] = True
                block.transpose(1, 2)[pad] = True
        # ... nor across groups.
        for k1, k2 in pairs:
            block = mask[:, slice(*index[k1]), slice(*index[k2])]
            if k1 in masking and self.groups[k1].padding is not None:
                block[self.groups[k1].padding] = True
            if k2 in masking and self.groups[k2].padding is not None:
                block.transpose(1, 2)[self.groups[k2].padding] = True
        if self.layout.version == "v1":
            self._v1_object_blocks(mask, index, device)
        return mask

    def _v1_object_blocks(self, mask: Tensor, index: Mapping[str, tuple[int, int]], device: torch.device) -> None:
        # v1 keeps the objects apart: a spatial query sees only its own object's queries,
        # tokens and memories.
        if "queries_spatial" in index and "tokens_spatial" in index and self.token_objects is not None:
            q = slice(*index["queries_spatial"])
            t = slice(*index["tokens_spatial"])
            qobj = self.spatial_query_objects(device)
            mask[:, q, q] = (qobj[:, None] != qobj[None, :])[None]
            tobj = self.token_objects.permute(0, 2, 1).to(device)  # (B, 1, N)
            mask[:, q, t] = tobj != qobj[None, :, None]
            mask[:, t, t] = tobj != tobj.transpose(1, 2)
        if self.memory_objects is not None and "memories_spatial" in index and "queries_spatial" in index:
            q = slice(*index["queries_spatial"])
            mm = slice(*index["memories_spatial"])
            qobj = self.spatial_query_objects(device)
            mobj = self.memory_objects.to(device)
            mask[:, q, mm] = (qobj[:, None] != mobj[None, :])[None]
            mask[:, mm, mm] = (mobj[:, None] != mobj[None, :])[None]


# v-style layout used when a demo config (whose own layout puts prompts in token slots of the
# object queries) is built: its parameters are the same, and segment-everything only uses the
# object queries, on which both layouts agree.
V_STYLE_ARCH: dict[str, Any] = {
    "SELF_ATTENTION": {
        "queries": {"object": ["queries_object"], "grounding": ["queries_grounding", "tokens_grounding"],
                    "spatial": ["queries_spatial", "tokens_spatial", "memories_spatial"]},
        "tokens": {"grounding": ["queries_grounding", "tokens_grounding"], "spatial": ["tokens_spatial"]},
        "memories": {"spatial": ["memories_spatial"]},
    },
    "CROSS_ATTENTION": {"queries": {"object": True, "grounding": True, "spatial": True},
                        "memories": {"spatial": True}, "tokens": {"grounding": False, "spatial": False}},
    "MASKING": ["tokens_spatial", "tokens_grounding"],
    "QUERY_NUMBER": 3,
}


def layout_arch(arch: Mapping[str, Any], is_demo: bool = False) -> dict[str, Any]:
    """The ``ATTENTION_ARCH`` to build a decoder with: the config's own, or for a demo config
    (``seem_demo``) the v-style layout with the demo's number of memories."""
    arch = dict(arch)
    if is_demo:
        return {**V_STYLE_ARCH, "SPATIAL_MEMORIES": arch.get("SPATIAL_MEMORIES", 32)}
    return arch
