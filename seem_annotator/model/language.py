"""SEEM's language encoder: text -> class embeddings and grounding token embeddings.

`LanguageEncoder` holds the CLIP-style ``lang_encoder`` (`TextTransformer`), the projection
``lang_proj`` [width, dim_proj] and the temperature ``logit_scale`` (a scalar; logits use its exp).
In a full SEEM its state-dict keys live under ``sem_seg_head.predictor.lang_encoder.``.

Class embeddings (``get_text_embeddings``) are what the decoder's ``pred_logits`` compare against:
for each class name, the projected end-of-text hidden state of every prompt sentence, each
L2-normalised, averaged and normalised again. They are kept in the non-persistent buffer
``default_text_embeddings`` [n_classes, dim_proj] (moves with ``.to()``, never saved).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from seem_annotator.errors import CheckpointError
from seem_annotator.model.config import cfg_get
from seem_annotator.model.prompt_templates import clean_class_name, prompted_texts
from seem_annotator.model.text_encoder import TextTransformer, l2_normalize
from seem_annotator.model.tokenizer import CONTEXT_LENGTH, VOCAB_SIZE, CLIPTokenizer, default_tokenizer

# Sequences per text-transformer call when embedding many prompt sentences (bounds peak memory).
_EMBED_CHUNK = 512


class LanguageEncoder(nn.Module):
    """Text side of SEEM.

    Args:
        context_length: token sequence length L (77).
        width, layers, heads: text transformer size (512, 12, 8).
        dim_proj: output embedding size P (``MODEL.DIM_PROJ``, 512).
        vocab_size: 49408 for the CLIP BPE vocabulary.
        autoregressive: causal attention (True in every SEEM config).
        tokenizer: defaults to the shared offline `CLIPTokenizer`, created on first use.
    """

    def __init__(self, context_length: int = CONTEXT_LENGTH, width: int = 512, layers: int = 12, heads: int = 8,
                 dim_proj: int = 512, vocab_size: int = VOCAB_SIZE, autoregressive: bool = True,
                 tokenizer: CLIPTokenizer | None = None) -> None:
        super().__init__()
        self.context_length = context_length
        self.dim_proj = dim_proj
        self.lang_encoder = TextTransformer(context_length, vocab_size, width, layers, heads, autoregressive)
        self.lang_proj = nn.Parameter(torch.empty(width, dim_proj))
        nn.init.trunc_normal_(self.lang_proj, std=0.02)
        self.logit_scale = nn.Parameter(torch.ones([]))
        self.register_buffer("default_text_embeddings", torch.zeros(0, dim_proj), persistent=False)
        self._tokenizer = tokenizer

    # ------------------------------------------------------------------ helpers

    @property
    def tokenizer(self) -> CLIPTokenizer:
        if self._tokenizer is None:
            self._tokenizer = default_tokenizer()
        return self._tokenizer

    @property
    def device(self) -> torch.device:
        return self.lang_proj.device

    def tokenize(self, texts: str | Sequence[str]) -> dict[str, torch.Tensor]:
        """``{"input_ids", "attention_mask"}``, each LongTensor [B, L], on this module's device."""
        tokens = self.tokenizer(texts, context_length=self.context_length)
        return {k: v.to(self.device) for k, v in tokens.items()}

    @staticmethod
    def eot_positions(input_ids: torch.Tensor) -> torch.Tensor:
        """Index of the end-of-text token per row [B]: the first occurrence of the largest id
        (``<|endoftext|>`` = 49407 is the largest CLIP id), as the reference takes it."""
        return input_ids.argmax(dim=-1)

    # ------------------------------------------------------------------ encoding

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected embeddings of every token and of the end-of-text token (not normalised).

        ``input_ids``/``attention_mask`` [B, L] -> (``token_emb`` [B, L, P], ``class_emb`` [B, P]).
        """
        hidden = self.lang_encoder(input_ids, attention_mask)
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        class_emb = hidden[rows, self.eot_positions(input_ids)] @ self.lang_proj
        return hidden @ self.lang_proj, class_emb

    def forward_language(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                         norm: bool = True) -> torch.Tensor:
        """End-of-text embedding per sequence [B, P], L2-normalised (eps 1e-7) when ``norm``.

        Only positions up to the last end-of-text token in the batch are computed: with the causal
        mask the later (padding) positions cannot influence them.
        """
        eot = self.eot_positions(input_ids)
        keep = int(eot.max().item()) + 1 if input_ids.numel() else input_ids.shape[1]
        if not self.lang_encoder.autoregressive:
            keep = input_ids.shape[1]
        mask = attention_mask[:, :keep] if attention_mask is not None else None
        hidden = self.lang_encoder(input_ids[:, :keep], mask)
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        x = hidden[rows, eot] @ self.lang_proj
        return l2_normalize(x) if norm else x

    @torch.no_grad()
    def get_text_embeddings(self, class_names: Sequence[str], prompt: bool = True, name: str = "default",
                            norm: bool = True) -> torch.Tensor:
        """Class embeddings [N, P] for ``class_names``, stored as ``{name}_text_embeddings``.

        ``prompt=True``: the mean over the 81 template sentences of each cleaned name
        (``-other``/``-merged``/``-stuff`` removed); ``prompt=False``: the name alone. Each sentence
        embedding is L2-normalised (when ``norm``), the mean is divided by its norm.
        """
        if isinstance(class_names, str):
            class_names = [class_names]
        groups = [prompted_texts(n) if prompt else [n] for n in class_names]
        flat = [text for group in groups for text in group]
        sentence_emb = []
        for start in range(0, len(flat), _EMBED_CHUNK):
            tokens = self.tokenize(flat[start: start + _EMBED_CHUNK])
            sentence_emb.append(self.forward_language(tokens["input_ids"], tokens["attention_mask"], norm=norm))
        if sentence_emb:
            per_sentence = torch.cat(sentence_emb)
            means = [chunk.mean(dim=0) for chunk in per_sentence.split([len(g) for g in groups])]
            emb = torch.stack([m / m.norm() for m in means])
        else:
            emb = torch.zeros(0, self.dim_proj, device=self.device, dtype=self.lang_proj.dtype)
        self.set_text_embeddings(emb, name)
        return emb

    def set_text_embeddings(self, embeddings: torch.Tensor, name: str = "default") -> None:
        """Install precomputed class embeddings [N, P] (e.g. from a cache) under ``name``."""
        if embeddings.ndim != 2 or embeddings.shape[1] != self.dim_proj:
            raise ValueError(f"class embeddings must be [N, {self.dim_proj}], got {list(embeddings.shape)}")
        attr = f"{name}_text_embeddings"
        embeddings = embeddings.to(self.device)
        if attr in self._buffers:
            self._buffers[attr] = embeddings
        else:
            self.register_buffer(attr, embeddings, persistent=False)

    def text_embeddings(self, name: str = "default") -> torch.Tensor:
        """The class embeddings stored under ``name`` [N, P] (N = 0 before any were computed)."""
        attr = f"{name}_text_embeddings"
        if attr not in self._buffers:
            raise KeyError(f"no class embeddings named {name!r}")
        return self._buffers[attr]

    @torch.no_grad()
    def get_text_token_embeddings(self, texts: str | Sequence[str] | dict[str, torch.Tensor],
                                  norm: bool = False) -> dict[str, Any]:
        """Grounding inputs for phrases.

        ``texts``: strings, or an already tokenised ``{"input_ids", "attention_mask"}`` dict.
        Returns ``{"tokens": {"input_ids", "attention_mask"} [B, 77], "token_emb" [B, 77, P],
        "class_emb" [B, P]}``; embeddings are projected by ``lang_proj`` and L2-normalised only when
        ``norm`` (SEEM's grounding path uses ``norm=False``).
        """
        if isinstance(texts, dict):
            tokens = {k: v.to(self.device) for k, v in texts.items()}
        else:
            tokens = self.tokenize(texts)
        token_emb, class_emb = self(tokens["input_ids"], tokens["attention_mask"])
        if norm:
            token_emb, class_emb = l2_normalize(token_emb), l2_normalize(class_emb)
        return {"tokens": tokens, "token_emb": token_emb, "class_emb": class_emb}

    def compute_similarity(self, v_emb: torch.Tensor, name: str = "default") -> torch.Tensor:
        """Class logits ``exp(logit_scale) * cos(v, t)`` (no clamp) against the stored class embeddings.

        ``v_emb`` [B, Q, P] -> [B, Q, N]. N is 0 until class embeddings have been computed.
        """
        t_emb = self.text_embeddings(name).to(v_emb.dtype)
        return self.logit_scale.exp() * l2_normalize(v_emb) @ t_emb.unsqueeze(0).transpose(1, 2)


def vl_similarity(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Grounding score ``min(exp(logit_scale), 100) * image_emb @ text_emb.T`` (inputs already normalised).

    ``image_emb`` [Q, P], ``text_emb`` [T, P] -> [Q, T].
    """
    return torch.clamp(logit_scale.exp(), max=100) * image_emb @ text_emb.t()


def build_language_encoder(cfg: dict[str, Any]) -> LanguageEncoder:
    """Build the `LanguageEncoder` a SEEM config describes (``MODEL.TEXT.*``, ``MODEL.DIM_PROJ``).

    Works under ``with torch.device("meta"):`` (no weights allocated).
    """
    tokenizer_kind = cfg_get(cfg, "MODEL.TEXT.TOKENIZER", "clip")
    if tokenizer_kind not in ("clip", "clip-fast"):
        raise CheckpointError(f"MODEL.TEXT.TOKENIZER {tokenizer_kind!r} is not supported; SEEM models use 'clip'.")
    arch = cfg_get(cfg, "MODEL.TEXT.ARCH", "vlpencoder")
    name = cfg_get(cfg, "MODEL.TEXT.NAME", "transformer")
    if arch != "vlpencoder" or name != "transformer":
        raise CheckpointError(
            f"MODEL.TEXT.ARCH/NAME {arch!r}/{name!r} are not supported; SEEM models use 'vlpencoder'/'transformer'."
        )
    return LanguageEncoder(
        context_length=int(cfg_get(cfg, "MODEL.TEXT.CONTEXT_LENGTH")),
        width=int(cfg_get(cfg, "MODEL.TEXT.WIDTH")),
        layers=int(cfg_get(cfg, "MODEL.TEXT.LAYERS")),
        heads=int(cfg_get(cfg, "MODEL.TEXT.HEADS")),
        dim_proj=int(cfg_get(cfg, "MODEL.DIM_PROJ")),
        autoregressive=bool(cfg_get(cfg, "MODEL.TEXT.AUTOGRESSIVE", True)),
    )


__all__ = ["LanguageEncoder", "build_language_encoder", "vl_similarity", "clean_class_name"]
