"""Label proposals from the project's own label list, through SEEM's language encoder.

SEEM predicts, for every mask, a vision-language "caption" embedding that its class head compares
with class-name embeddings. The official demo compares it with COCO-133 only; here the names are
the project's labels: each name is embedded once (mean of a few prompt sentences through the
language encoder, like SEEM's class embeddings) and kept per name, so editing the label list only
embeds new names. A "background" entry competes with the labels: when it wins, or no label is
clearly ahead, the proposal is "unknown".
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch
from torch import Tensor

from seem_annotator.model.prompt_templates import clean_class_name

UNKNOWN = "unknown"
BACKGROUND = "background"
# A few of SEEM's own templates (the first ones of its list): enough to stabilise a name's
# embedding, cheap enough to embed a long label list on a CPU.
TEMPLATES: tuple[str, ...] = ("{}.", "a photo of a {}.", "a photo of the {}.", "a photo of many {}.")
MIN_PROBABILITY = 0.25  # below this the best label is not a confident answer

# COCO panoptic categories as SEEM names them (80 things, then 53 stuff): the vocabulary of the
# segment-everything pass of a 133-class model.
COCO_PANOPTIC_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
    "banner", "blanket", "bridge", "cardboard", "counter", "curtain", "door-stuff", "floor-wood", "flower",
    "fruit", "gravel", "house", "light", "mirror-stuff", "net", "pillow", "platform", "playingfield",
    "railroad", "river", "road", "roof", "sand", "sea", "shelf", "snow", "stairs", "tent", "towel",
    "wall-brick", "wall-stone", "wall-tile", "wall-wood", "water-other", "window-blind", "window-other",
    "tree-merged", "fence-merged", "ceiling-merged", "sky-other-merged", "cabinet-merged", "table-merged",
    "floor-other-merged", "pavement-merged", "mountain-merged", "grass-merged", "dirt-merged",
    "paper-merged", "food-other-merged", "building-other-merged", "rock-merged", "wall-other-merged",
    "rug-merged",
)


class LabelVocabulary:
    """Embeds label names with a SEEM language encoder and ranks names for caption embeddings.

    language: the model's `LanguageEncoder` (``model.language``).
    """

    def __init__(self, language: torch.nn.Module, templates: Sequence[str] = TEMPLATES) -> None:
        self.language = language
        self.templates = tuple(templates)
        self._by_name: dict[str, Tensor] = {}
        self._lock = threading.Lock()
        self.embedded = 0  # names embedded so far (tests check the cache)

    @torch.no_grad()
    def embeddings(self, names: Sequence[str]) -> Tensor:
        """(N, P) unit-norm embeddings of `names`, computing only names not seen before."""
        with self._lock:
            missing = [n for n in dict.fromkeys(names) if n not in self._by_name]
            if missing:
                sentences = [t.format(clean_class_name(n)) for n in missing for t in self.templates]
                tokens = self.language.tokenize(sentences)
                emb = self.language.forward_language(tokens["input_ids"], tokens["attention_mask"], norm=True)
                emb = emb.float().reshape(len(missing), len(self.templates), -1).mean(1)
                emb = emb / emb.norm(dim=-1, keepdim=True).clamp_min(1e-7)
                for name, vector in zip(missing, emb):
                    self._by_name[name] = vector
                self.embedded += len(missing)
            if not names:
                return torch.zeros(0, self.language.dim_proj, device=self.language.device)
            return torch.stack([self._by_name[n] for n in names])

    @torch.no_grad()
    def propose(self, captions: Tensor, names: Sequence[str], top_k: int = 5) -> list[list[tuple[str, float]]]:
        """Label proposals for each caption embedding (n, P): best first, (name, probability),
        with ("unknown", p) first when "background" wins or no label reaches MIN_PROBABILITY."""
        names = [n for n in names if n]
        if captions.ndim == 1:
            captions = captions[None]
        if not names:
            return [[(UNKNOWN, 1.0)] for _ in range(captions.shape[0])]
        table = self.embeddings([*names, BACKGROUND])
        v = captions.float().to(table.device)
        v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-7)
        scale = self.language.logit_scale.float().exp().to(table.device)
        probs = (scale * v @ table.t()).softmax(dim=-1).cpu()
        out: list[list[tuple[str, float]]] = []
        for row in probs:
            p_bg = float(row[-1])
            order = row[:-1].argsort(descending=True)[:top_k].tolist()
            ranked = [(names[i], float(row[i])) for i in order]
            if p_bg >= ranked[0][1] or ranked[0][1] < MIN_PROBABILITY:
                ranked.insert(0, (UNKNOWN, max(p_bg, 1.0 - ranked[0][1])))
            out.append(ranked)
        return out
