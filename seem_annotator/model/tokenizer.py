"""CLIP byte-pair-encoding tokenizer, offline.

Gives the token ids of Hugging Face's ``CLIPTokenizer.from_pretrained('openai/clip-vit-base-patch32')``
called the way SEEM calls it (``padding='max_length', truncation=True, max_length=77``):
``<|startoftext|>`` (49406), the BPE ids of the text (at most 75), ``<|endoftext|>`` (49407), then
padding with 49407; ``attention_mask`` is 1 on start..end tokens and 0 on padding.

The vocabulary is built from the bundled merge list ``resources/clip/bpe_simple_vocab_16e6.txt.gz``
exactly as CLIP's ``vocab.json`` is: the 256 byte symbols, the same with ``</w>``, one token per merge,
then the two special tokens (49,408 ids).

Text normalisation: the reference tokenizer runs ``ftfy.fix_text``, collapses whitespace and
lower-cases. When ``ftfy`` is installed it is used here too; otherwise `basic_fix_text` applies the
parts of ``fix_text`` that matter for typed labels and phrases (HTML entities, curly quotes,
ligatures, full-width forms, control characters, NFC) and skips mojibake repair.
"""

from __future__ import annotations

import gzip
import html
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import regex
import torch

from seem_annotator.paths import resource

SOT_TOKEN = "<|startoftext|>"
EOT_TOKEN = "<|endoftext|>"
SOT_ID = 49406
EOT_ID = 49407
PAD_ID = EOT_ID
VOCAB_SIZE = 49408
CONTEXT_LENGTH = 77
# Merge lines used by CLIP: 49152 - 256 - 2 (the file has more; CLIP keeps the first 48894).
_NUM_MERGES = 49152 - 256 - 2

# Word pieces: the special tokens, English contractions, letter runs, single digits, symbol runs.
_WORD_PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)
_SPECIAL_SPLIT = re.compile("(" + re.escape(SOT_TOKEN) + "|" + re.escape(EOT_TOKEN) + ")")


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """Reversible byte -> printable unicode character map used by GPT-2/CLIP BPE.

    Printable Latin-1 bytes map to themselves; the remaining 68 bytes map to U+0100 onwards, in
    byte order, so every byte string becomes a string of visible characters. The dict's order (the
    printable bytes first, then the others) is the order of the first 256 vocabulary ids.
    """
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    table: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


# ---------------------------------------------------------------- normalisation (ftfy subset)

_LIGATURES = {
    "Ĳ": "IJ", "ĳ": "ij", "ŉ": "ʼn", "Ǆ": "DŽ", "ǅ": "Dž", "ǆ": "dž", "Ǉ": "LJ", "ǈ": "Lj", "ǉ": "lj",
    "Ǌ": "NJ", "ǋ": "Nj", "ǌ": "nj", "ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "ſt",
    "ﬆ": "st",
}
_QUOTES = {"‘": "'", "’": "'", "‚": "'", "‛": "'", "“": '"', "”": '"', "„": '"', "‟": '"'}
_TERMINAL_ESCAPE = re.compile(r"\033\[((?:\d|;)*)([a-zA-Z])")
# Control characters ftfy removes: C0 except tab/newline/form feed/CR, DEL, and a few format chars.
_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]")
_WHITESPACE = re.compile(r"\s+")


def basic_fix_text(text: str) -> str:
    """The text repairs of ``ftfy.fix_text`` that typed labels and phrases meet, without ftfy."""
    for _ in range(8):  # ftfy repeats its fixes until the text stops changing
        fixed = _fix_once(text)
        if fixed == text:
            break
        text = fixed
    return text


def _fix_once(text: str) -> str:
    if "<" not in text:  # ftfy leaves entities alone in text that looks like HTML
        text = html.unescape(text)
    text = _TERMINAL_ESCAPE.sub("", text)
    text = "".join(_LIGATURES.get(c, c) for c in text)
    # Full-width ASCII forms and the ideographic space become their ordinary forms.
    text = "".join(unicodedata.normalize("NFKC", c) if "\uff01" <= c <= "\uff5e" else c for c in text)
    text = text.replace("\u3000", " ")
    text = "".join(_QUOTES.get(c, c) for c in text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n")
    text = _CONTROL.sub("", text)
    return unicodedata.normalize("NFC", text)


def _load_fix_text():
    try:
        import ftfy  # optional: exact reference normalisation when present
    except ImportError:
        return basic_fix_text
    return ftfy.fix_text


def normalize_text(text: str, fix_text=None) -> str:
    """Reference pre-tokenisation: fix text, collapse whitespace runs to one space, strip, lower."""
    fixer = fix_text or _load_fix_text()
    return _WHITESPACE.sub(" ", fixer(text)).strip().lower()


# ---------------------------------------------------------------- tokenizer


class CLIPTokenizer:
    """Offline CLIP BPE tokenizer.

    >>> tok = CLIPTokenizer()
    >>> tok(["a dog"])["input_ids"][0, :4].tolist()
    [49406, 320, 1929, 49407]
    """

    def __init__(self, bpe_path: str | Path | None = None, use_ftfy: bool = True) -> None:
        path = Path(bpe_path) if bpe_path is not None else resource("clip", "bpe_simple_vocab_16e6.txt.gz")
        try:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                lines = f.read().split("\n")
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise FileNotFoundError(f"CLIP BPE vocabulary unreadable at {path}: {exc}") from exc
        merges = [tuple(line.split()) for line in lines[1: _NUM_MERGES + 1]]
        byte_symbols = list(bytes_to_unicode().values())
        vocab = byte_symbols + [s + "</w>" for s in byte_symbols] + ["".join(m) for m in merges]
        vocab += [SOT_TOKEN, EOT_TOKEN]
        if len(vocab) != VOCAB_SIZE:
            raise ValueError(f"CLIP BPE vocabulary at {path} gives {len(vocab)} tokens, expected {VOCAB_SIZE}")
        self.encoder: dict[str, int] = {tok: i for i, tok in enumerate(vocab)}
        self.decoder: dict[int, str] = {i: tok for tok, i in self.encoder.items()}
        self.bpe_ranks: dict[tuple[str, str], int] = {m: i for i, m in enumerate(merges)}
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        self._fix_text = _load_fix_text() if use_ftfy else basic_fix_text
        # Special tokens are whole words (the reference seeds its BPE cache with them).
        self._cache: dict[str, str] = {SOT_TOKEN: SOT_TOKEN, EOT_TOKEN: EOT_TOKEN}
        self.sot_id = SOT_ID
        self.eot_id = EOT_ID
        self.pad_id = PAD_ID

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def bpe(self, word: str) -> str:
        """Apply the merges to one byte-mapped word; returns space-separated sub-word tokens, the
        last one ending in ``</w>``."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            # The lowest-ranked (earliest learned) adjacent pair is merged first.
            first, second = min(zip(parts, parts[1:]), key=lambda p: self.bpe_ranks.get(p, _NO_RANK))
            if (first, second) not in self.bpe_ranks:
                break
            merged: list[str] = []
            i = 0
            # Merge every non-overlapping occurrence of the best pair, left to right.
            while i < len(parts):
                if i < len(parts) - 1 and parts[i] == first and parts[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        result = " ".join(parts)
        if len(self._cache) < 100_000:
            self._cache[word] = result
        return result

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without start/end tokens or padding. A literal ``<|endoftext|>`` or
        ``<|startoftext|>`` in the text becomes that special token, as in the reference."""
        ids: list[int] = []
        for chunk in _SPECIAL_SPLIT.split(text):
            if chunk in (SOT_TOKEN, EOT_TOKEN):
                ids.append(self.encoder[chunk])
                continue
            if not chunk:
                continue
            normalized = normalize_text(chunk, self._fix_text)
            for word in _WORD_PATTERN.findall(normalized):
                mapped = "".join(self.byte_encoder[b] for b in word.encode("utf-8"))
                ids.extend(self.encoder[piece] for piece in self.bpe(mapped).split(" "))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` (special and padding tokens dropped; word ends become spaces)."""
        pieces = [self.decoder[int(i)] for i in ids if int(i) not in (SOT_ID, EOT_ID)]
        words = "".join(pieces).split("</w>")
        data = b" ".join(bytes(self.byte_decoder[c] for c in word) for word in words)
        return data.decode("utf-8", errors="replace").strip()

    def __call__(self, texts: str | Sequence[str], context_length: int = CONTEXT_LENGTH) -> dict[str, torch.Tensor]:
        """Tokenise a batch the way SEEM does (pad to ``context_length``, truncate keeping the end token).

        Returns ``{"input_ids": LongTensor [B, L], "attention_mask": LongTensor [B, L]}`` on the CPU.
        """
        if isinstance(texts, str):
            texts = [texts]
        if context_length < 2:
            raise ValueError("context_length must leave room for the start and end tokens")
        input_ids = torch.full((len(texts), context_length), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(texts), context_length), dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self.sot_id] + self.encode(text)[: context_length - 2] + [self.eot_id]
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}


_NO_RANK = 1 << 62


@lru_cache(maxsize=1)
def default_tokenizer() -> CLIPTokenizer:
    """The shared tokenizer built from the bundled vocabulary (built once per process)."""
    return CLIPTokenizer()
