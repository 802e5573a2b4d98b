"""The SEEM decoder (``sem_seg_head.predictor``): object, grounding and spatial queries.

A masked-attention transformer (Mask2Former style) whose queries cross-attend to the three
decoder levels of the pixel decoder in turn (1/32, 1/16, 1/8), then self-attend within the
groups that ``ATTENTION_ARCH`` allows, then go through an FFN; after every layer the prediction
heads give each query a mask (dot product with ``mask_features``), a caption embedding (for
class / text matching) and the attention mask for the next layer.

Work split for interactive use:

* :meth:`SEEMDecoder.prepare` turns the pixel-decoder output into :class:`DecoderInputs`
  (per image, cacheable);
* :meth:`SEEMDecoder.encode_spatial` turns prompt masks into a
  :class:`~.spatial_prompts.SpatialPrompt` (per round, or once per reference region);
* :meth:`SEEMDecoder.decode` runs the transformer. With ``object_queries=False`` the 101 object
  queries are left out: spatial and grounding queries never attend to them (their
  self-attention mask blocks them, cross-attention is per query), so the spatial and grounding
  answers are the same as in the full pass, at a fraction of the cost.

Attention masks are computed from ``mask_features`` already resized to each level (bilinear
resizing is linear, so this equals resizing the full-resolution mask logits); full-resolution
masks are only computed for the final prediction. The maps are kept channels-last so that a
mask prediction is one pixel-major matrix product (:func:`mask_logits`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention_layout import AttentionLayout, Group, GroupState
from .layers import MLP, CrossAttentionLayer, FFNLayer, SelfAttentionLayer
from .memory_stream import MemoryStream, draw_memory_objects, memory_mask, memory_stream
from .position_encoding import PositionEmbeddingSine
from .sampler import Sampler, TorchSampler
from .spatial_prompts import SpatialPrompt, encode_spatial_prompt

# Output names of the prediction heads per query group (reference naming).
MASK_KEYS = {"queries_object": "pred_masks", "queries_grounding": "pred_gmasks", "queries_spatial": "pred_smasks"}
CAPTION_KEYS = {"queries_object": "pred_captions", "queries_grounding": "pred_gtexts",
                "queries_spatial": "pred_stexts"}
QUERY_GROUPS = ("queries_object", "queries_grounding", "queries_spatial")


def mask_logits(embeddings: Tensor, maps: Tensor) -> Tensor:
    """Mask embeddings (B, Q, C) · feature maps (B, C, h, w) -> mask logits (B, Q, h, w).

    One matrix product over the pixels; with channels-last ``maps`` (as :meth:`SEEMDecoder.prepare`
    stores them) the (B, h*w, C) view needs no copy and each pixel's channels are read together,
    about twice as fast as the (C, h*w) layout for the few queries of a click round. The result
    is a (B, Q, h, w) view of a pixel-major product (not contiguous).
    """
    b, c, h, w = maps.shape
    pixels = maps.permute(0, 2, 3, 1).reshape(b, h * w, c)
    if b == 1:
        return F.linear(embeddings[0], pixels[0]).view(1, -1, h, w)
    return torch.matmul(pixels, embeddings.transpose(1, 2)).transpose(1, 2).view(b, -1, h, w)


@dataclass
class DecoderInputs:
    """Per-image decoder inputs derived from the pixel decoder (cache these per image).

    src: per level (h_i*w_i, B, C), input projection + level embedding; level order 1/32, 1/16, 1/8.
    pos: per level (h_i*w_i, B, C) sine positional embedding.
    sizes: per level (h_i, w_i).
    mask_features: (B, C_mask, H/4, W/4), stored channels-last (see :func:`mask_logits`).
    mask_levels: ``mask_features`` bilinearly resized to each level size (for attention masks),
        channels-last too.
    kv: optional, per decoder layer, the cross-attention key/value projections of that layer's
        level, heads first (B, heads, h*w, C/heads) each (:meth:`SEEMDecoder.cache_kv`); they are
        most of the cost of a decoder pass with few queries.
    """

    src: list[Tensor]
    pos: list[Tensor]
    sizes: list[tuple[int, int]]
    mask_features: Tensor
    mask_levels: list[Tensor]
    kv: list[tuple[Tensor, Tensor]] | None = None

    @property
    def batch(self) -> int:
        return int(self.mask_features.shape[0])

    def level_map(self, i: int) -> Tensor:
        """Level ``i`` input as a map (B, C, h_i, w_i)."""
        h, w = self.sizes[i]
        return self.src[i].permute(1, 2, 0).reshape(self.batch, -1, h, w)

    def repeat(self, n: int) -> DecoderInputs:
        """The same inputs repeated ``n`` times along the batch (v0: one object per element)."""
        kv = None if self.kv is None else [(k.repeat(n, 1, 1, 1), v.repeat(n, 1, 1, 1)) for k, v in self.kv]
        return DecoderInputs(
            [s.repeat(1, n, 1) for s in self.src], [p.repeat(1, n, 1) for p in self.pos], list(self.sizes),
            self.mask_features.repeat(n, 1, 1, 1), [m.repeat(n, 1, 1, 1) for m in self.mask_levels], kv)


class SEEMDecoder(nn.Module):
    """SEEM decoder (v0 or v1 layout) with the parameter names of the released checkpoints.

    ``lang_encoder`` must provide ``compute_similarity(v (B, Q, D)) -> (B, Q, n_classes)``
    against its current class embeddings; it is registered as a submodule (its keys live under
    ``sem_seg_head.predictor.lang_encoder.``).
    """

    def __init__(
        self,
        *,
        lang_encoder: nn.Module,
        in_channels: int,
        hidden_dim: int,
        dim_proj: int,
        num_queries: int,
        nheads: int,
        dim_feedforward: int,
        dec_layers: int,
        mask_dim: int,
        max_spatial_len: Sequence[int],
        attn_arch: Mapping[str, Any],
        version: str = "v1",
        enforce_input_project: bool = False,
        spatial: bool = True,
        num_feature_levels: int = 3,
    ) -> None:
        super().__init__()
        self.version = version
        self.layout = AttentionLayout(attn_arch, version)
        self.hidden_dim = hidden_dim
        self.num_heads = nheads
        self.num_layers = dec_layers
        self.num_queries = num_queries
        self.num_feature_levels = num_feature_levels
        self.max_spatial_len = list(max_spatial_len)
        self.pe_layer = PositionEmbeddingSine(hidden_dim // 2, normalize=True)
        self.transformer_self_attention_layers = nn.ModuleList(
            SelfAttentionLayer(hidden_dim, nheads) for _ in range(dec_layers))
        self.transformer_cross_attention_layers = nn.ModuleList(
            CrossAttentionLayer(hidden_dim, nheads) for _ in range(dec_layers))
        self.transformer_ffn_layers = nn.ModuleList(FFNLayer(hidden_dim, dim_feedforward) for _ in range(dec_layers))
        self.decoder_norm = nn.LayerNorm(hidden_dim)
        self.query_feat = nn.Embedding(num_queries, hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.level_embed = nn.Embedding(num_feature_levels, hidden_dim)
        self.input_proj = nn.ModuleList(
            nn.Conv2d(in_channels, hidden_dim, 1) if (in_channels != hidden_dim or enforce_input_project)
            else nn.Sequential()
            for _ in range(num_feature_levels))
        self.lang_encoder = lang_encoder
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)
        self.class_embed = nn.Parameter(torch.empty(hidden_dim, dim_proj))
        nn.init.trunc_normal_(self.class_embed, std=0.02)
        self.spatial = spatial
        if spatial:
            self.mask_sptial_embed = nn.ParameterList(
                nn.Parameter(nn.init.trunc_normal_(torch.empty(hidden_dim, hidden_dim), std=0.02))
                for _ in range(num_feature_levels))
            self.spatial_embed = nn.Embedding(self.layout.num_memories, hidden_dim)
            self.spatial_featured = nn.Embedding(self.layout.num_memories, hidden_dim)
            self.pn_indicator = nn.Embedding(2, hidden_dim)

    # -- per image -------------------------------------------------------------------------
    def prepare(self, multi_scale_features: Sequence[Tensor], mask_features: Tensor) -> DecoderInputs:
        """multi_scale_features: ``num_feature_levels`` maps (B, C_in, h_i, w_i), low -> high res;
        mask_features (B, C_mask, H/4, W/4). Returns :class:`DecoderInputs`."""
        # Channels-last maps: a mask prediction (a few embeddings against every pixel) then reads
        # each map once, contiguously (see mask_logits).
        mask_features = mask_features.contiguous(memory_format=torch.channels_last)
        src, pos, sizes, levels = [], [], [], []
        for i in range(self.num_feature_levels):
            x = multi_scale_features[i]
            sizes.append((int(x.shape[-2]), int(x.shape[-1])))
            pos.append(self.pe_layer(x).flatten(2).permute(2, 0, 1).to(x.dtype))
            s = self.input_proj[i](x).flatten(2) + self.level_embed.weight[i][None, :, None]
            src.append(s.permute(2, 0, 1))
            level = F.interpolate(mask_features, size=sizes[-1], mode="bilinear", align_corners=False)
            levels.append(level.contiguous(memory_format=torch.channels_last))
        return DecoderInputs(src, pos, sizes, mask_features, levels)

    def cache_kv(self, inputs: DecoderInputs) -> DecoderInputs:
        """Fill ``inputs.kv`` with every layer's cross-attention key/value projections (per image;
        makes later decodes of this image much cheaper). Returns ``inputs``."""
        kv = []
        for i, layer in enumerate(self.transformer_cross_attention_layers):
            lvl = i % self.num_feature_levels
            kv.append(layer.multihead_attn.project_kv(inputs.src[lvl] + inputs.pos[lvl], inputs.src[lvl],
                                                      heads_first=True))
        inputs.kv = kv
        return inputs

    def memory_stream(self, inputs: DecoderInputs, prev_mask: Tensor, sampler: Sampler) -> MemoryStream:
        """The memories' states for a round with ``prev_mask`` (B, c, H/4, W/4), drawing the memory
        assignment as :meth:`decode` would (for one object the draws do not change the stream)."""
        objects = draw_memory_objects(sampler, self.version, prev_mask.shape[1], self.layout.num_memories,
                                      self.num_layers)
        return memory_stream(self, inputs, prev_mask, objects)

    # -- per prompt ------------------------------------------------------------------------
    def encode_spatial(self, inputs: DecoderInputs, pos_masks: list[Tensor], neg_masks: list[Tensor],
                       sampler: Sampler) -> SpatialPrompt:
        """Prompt masks -> :class:`SpatialPrompt` (see :func:`encode_spatial_prompt`)."""
        if not self.spatial:
            raise RuntimeError("this SEEM model was built without spatial prompts (DECODER.SPATIAL.ENABLED)")
        return encode_spatial_prompt(
            pos_masks, neg_masks, inputs.mask_features,
            [inputs.level_map(i) for i in range(self.num_feature_levels)],
            list(self.mask_sptial_embed), self.pn_indicator.weight, self.max_spatial_len, sampler, self.version)

    def decode(
        self,
        inputs: DecoderInputs,
        *,
        spatial: SpatialPrompt | None = None,
        prev_mask: Tensor | None = None,
        grounding_tokens: Tensor | None = None,
        grounding_padding: Tensor | None = None,
        object_queries: bool = True,
        sampler: Sampler | None = None,
        aux: bool = True,
        memories: MemoryStream | None = None,
        final_masks: bool = True,
    ) -> dict[str, Any]:
        """Run the decoder.

        spatial: encoded spatial prompt (n_obj objects). prev_mask: (B, n_obj, H/4, W/4) mask
        logits of the previous round (switches on the memories; needs ``spatial``).
        grounding_tokens: (T, B, C) text token embeddings, grounding_padding (B, T) True = pad.
        object_queries: False leaves out the object queries (no ``pred_logits``/``pred_masks``).
        memories: a precomputed :meth:`memory_stream` for ``prev_mask``; used when it matches this
        round's draws, else the memories run inline with the queries (the answer is the same).
        final_masks: False leaves out the grounding queries' final masks (``pred_gmasks``) and
        returns their mask embeddings ``pred_gmaskembs`` (B, Q, C) instead, for callers that only
        need the masks of the queries they pick (:func:`mask_logits` with ``mask_features``).

        Returns the final predictions: ``pred_logits`` (B, Q, K) and ``pred_masks`` (B, Q, H/4, W/4)
        and ``pred_captions`` (B, Q, D) for object queries; ``pred_gmasks``/``pred_gtexts`` for
        grounding queries; ``pred_smasks``/``pred_stexts``/``pred_smaskembs``/``pred_slogits``,
        ``pred_pspatials``/``pred_nspatials`` (B, n_obj, C) and the selected ``prev_mask``
        (B, n_obj, H/4, W/4) for spatial prompts, with ``memories_from_stream`` (whether
        ``memories`` was used); ``aux_outputs``: the same small tensors (no masks) for the earlier
        prediction rounds (empty without ``aux``).
        """
        sampler = sampler or TorchSampler()
        bs = inputs.batch
        state = GroupState(self.layout)
        obj_out = self.query_feat.weight.unsqueeze(1).repeat(1, bs, 1)
        obj_pos = self.query_embed.weight.unsqueeze(1).repeat(1, bs, 1)
        if object_queries:
            state.groups["queries_object"] = Group(obj_out, obj_pos)
        if spatial is not None:
            if not self.spatial:
                raise RuntimeError("this SEEM model was built without spatial prompts")
            n_obj = spatial.num_objects
            state.num_objects = n_obj
            if self.version == "v1":
                # v1: QUERY_NUMBER randomly chosen object queries per object become its spatial queries.
                pick = sampler.randint(self.num_queries, self.layout.query_number * n_obj).to(obj_out.device)
                state.groups["queries_spatial"] = Group(obj_out[pick].clone(), obj_pos[pick].clone())
            else:
                state.groups["queries_spatial"] = Group(obj_out.clone(), obj_pos.clone())
            state.groups["memories_spatial"] = Group(
                self.spatial_featured.weight.unsqueeze(1).repeat(1, bs, 1),
                self.spatial_embed.weight.unsqueeze(1).repeat(1, bs, 1))
            state.memories_on = prev_mask is not None
            if state.memories_on:
                # All of the memories' random draws come here, in the reference's order (one per layer).
                objects = draw_memory_objects(sampler, self.version, prev_mask.shape[1], self.layout.num_memories,
                                              self.num_layers)
                # A matching precomputed stream replaces the memory rows; else they run inline.
                state.memories_external = memories is not None and memories.matches(prev_mask, objects)
        elif prev_mask is not None:
            raise ValueError("prev_mask needs a spatial prompt")
        if grounding_tokens is not None:
            if grounding_padding is None:
                grounding_padding = torch.zeros(bs, grounding_tokens.shape[0], dtype=torch.bool,
                                                device=grounding_tokens.device)
            state.groups["tokens_grounding"] = Group(grounding_tokens, grounding_tokens.detach().clone(),
                                                     padding=grounding_padding)
            state.groups["queries_grounding"] = Group(obj_out.clone(), obj_pos.clone())
        if not any(n in state.groups for n in QUERY_GROUPS):
            raise ValueError("nothing to decode: no object queries and no prompt")

        history: list[dict[str, Tensor]] = []
        names = state.cross_names()
        output, query_pos, index = state.concat(names)
        history.append(self._heads(state, output, index, inputs, 0, final=self.num_layers == 0, aux=aux,
                                   final_masks=final_masks))
        # The self-attention mask only changes with the level's tokens and the layer's memory draw.
        self_masks: dict[tuple, Tensor] = {}
        for i in range(self.num_layers):
            level = i % self.num_feature_levels
            mem_mask = None
            if state.memories_on and not state.memories_external:
                mem_mask = memory_mask(prev_mask, inputs.sizes[level], objects[i], self.layout.num_memories,
                                       output.dtype)
                state.memory_objects = objects[i]
            cross_mask = state.cross_attn_mask(names, mem_mask)
            output = self.transformer_cross_attention_layers[i](
                output, inputs.src[level], memory_mask=cross_mask, pos=inputs.pos[level], query_pos=query_pos,
                kv=None if inputs.kv is None else inputs.kv[i])
            state.split(output, index)
            if spatial is not None:
                state.groups["tokens_spatial"] = Group(spatial.tokens[level], spatial.tokens[level].detach().clone(),
                                                       padding=spatial.token_padding[level])
                state.token_objects = None if spatial.token_objects is None else spatial.token_objects[level]
                if state.memories_external:
                    state.groups["memories_spatial"].output = memories.states[i]
                    state.memory_objects = memories.objects[i]
            self_names = state.self_names()
            output, query_pos, self_index = state.concat(self_names)
            mem_key = None if state.memory_objects is None else tuple(state.memory_objects.tolist())
            attn_mask = self_masks.get((level, mem_key))
            if attn_mask is None:
                attn_mask = state.self_attn_mask(self_names, self_index, bs, output.device)
                self_masks[(level, mem_key)] = attn_mask
            # Spatial tokens are re-read from the prompt every layer, precomputed memories come
            # from their stream, and after the last layer only the queries are read: the other
            # rows' updates are never used, so skip them (the kept rows get exactly the same result).
            skip = {"tokens_spatial"}
            if state.memories_external or i == self.num_layers - 1:
                skip.add("memories_spatial")
            if i == self.num_layers - 1:
                skip.add("tokens_grounding")
            # Precomputed memories are the last self-attention group: their keys/values come ready.
            tail_kv = memories.keys_values[i] if state.memories_external and \
                next(reversed(self_index)) == "memories_spatial" else None
            if skip.isdisjoint(self_index):
                output = self.transformer_self_attention_layers[i](output, tgt_mask=attn_mask, query_pos=query_pos)
                output = self.transformer_ffn_layers[i](output)
            else:
                rows = torch.cat([torch.arange(a, b, device=output.device)
                                  for n, (a, b) in self_index.items() if n not in skip])
                upd = self.transformer_self_attention_layers[i](output, tgt_mask=attn_mask, query_pos=query_pos,
                                                                rows=rows, tail_kv=tail_kv)
                output = output.index_copy(0, rows, self.transformer_ffn_layers[i](upd))
            state.split(output, self_index)
            output, query_pos, index = state.concat(names)
            next_level = (i + 1) % self.num_feature_levels
            history.append(self._heads(state, output, index, inputs, next_level, final=i == self.num_layers - 1,
                                       aux=aux, final_masks=final_masks))
        result = history[-1]
        if spatial is not None:
            for h in history:
                h["pred_pspatials"] = spatial.query_pos.transpose(0, 1)
                h["pred_nspatials"] = spatial.query_neg.transpose(0, 1)
            result["prev_mask"] = self.select_spatial(result)
            result["memories_from_stream"] = state.memories_external
        if aux:
            result["aux_outputs"] = [{k: v for k, v in h.items() if k not in ("pred_masks", "pred_gmasks",
                                                                              "pred_smasks")}
                                     for h in history[:-1]]
        else:
            result["aux_outputs"] = []
        return result

    def _heads(self, state: GroupState, output: Tensor, index: Mapping[str, tuple[int, int]],
               inputs: DecoderInputs, level: int, final: bool, aux: bool = True, final_masks: bool = True
               ) -> dict[str, Tensor]:
        """Prediction heads on the query groups; stores each group's next attention mask.
        Without ``aux``, earlier rounds only compute what the next attention masks need; without
        ``final_masks``, the grounding queries' final masks are left to the caller."""
        names = [n for n in QUERY_GROUPS if n in index]
        start, end = index[names[0]][0], index[names[-1]][1]
        if end - start != sum(b - a for n, (a, b) in index.items() if n in names):
            raise ValueError("ATTENTION_ARCH must list the query groups contiguously in CROSS_ATTENTION")
        d = self.decoder_norm(output[start:end]).transpose(0, 1)  # (B, Q, C)
        mask_emb = self.mask_embed(d)
        out: dict[str, Tensor] = {}
        if not (final or aux):
            blocked = mask_logits(mask_emb, inputs.mask_levels[level]).sigmoid().flatten(2) < 0.5
            for n in names:
                state.groups[n].attn_mask = blocked[:, index[n][0] - start: index[n][1] - start]
            return out
        caption = d @ self.class_embed
        if final:  # full-resolution masks; no further attention masks are needed
            # (the grounding queries' are left to the caller without final_masks)
            masked = [n for n in names if final_masks or n != "queries_grounding"]
            full = mask_logits(mask_emb, inputs.mask_features) if masked == names else None
        else:
            small = mask_logits(mask_emb, inputs.mask_levels[level])
            blocked = small.sigmoid().flatten(2) < 0.5  # (B, Q, hw), shared by the heads
        for n in names:
            a, b = index[n][0] - start, index[n][1] - start
            out[CAPTION_KEYS[n]] = caption[:, a:b]
            if final and full is not None:
                out[MASK_KEYS[n]] = full[:, a:b]
            elif final and n in masked:
                out[MASK_KEYS[n]] = mask_logits(mask_emb[:, a:b], inputs.mask_features)
            elif final:
                out["pred_gmaskembs"] = mask_emb[:, a:b]
            else:
                state.groups[n].attn_mask = blocked[:, a:b]
            if n == "queries_object":
                out["pred_logits"] = self.lang_encoder.compute_similarity(caption[:, a:b])
            elif n == "queries_spatial":
                out["pred_smaskembs"] = mask_emb[:, a:b]
                out["pred_slogits"] = self.lang_encoder.compute_similarity(caption[:, a:b])
        return out

    def selected_index(self, result: Mapping[str, Tensor]) -> Tensor:
        """(B, n_obj) index among the spatial queries of each object's answer.

        Score = mask embedding · positive prompt vector; v1 restricts each object to its own
        QUERY_NUMBER queries, v0 takes the best of all queries for its (single) object.
        """
        emb, prompt = result["pred_smaskembs"], result["pred_pspatials"]
        scores = emb @ prompt.transpose(1, 2)  # (B, Ns, n_obj)
        if self.version == "v0":
            return scores[:, :, 0].argmax(dim=1)[:, None]
        n_obj = prompt.shape[1]
        owner = torch.arange(n_obj, device=emb.device).repeat_interleave(self.layout.query_number)
        scores = scores.masked_fill(owner[None, :, None] != torch.arange(n_obj, device=emb.device)[None, None],
                                    float("-inf"))
        return scores.argmax(dim=1)

    def select_spatial(self, result: Mapping[str, Tensor]) -> Tensor:
        """Each object's answer (see :meth:`selected_index`) -> (B, n_obj, H/4, W/4) mask logits."""
        masks = result["pred_smasks"]
        idx = self.selected_index(result)
        return torch.gather(masks, 1, idx[:, :, None, None].expand(-1, -1, *masks.shape[-2:]))
