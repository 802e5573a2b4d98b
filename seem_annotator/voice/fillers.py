"""Acknowledgements people wrap around spoken commands ("alright, next one", "yes, done", "that
looks fine, okay"): recognising them so the command inside is found, while a real description
("the dog on the left", "fine sand", "right arm") stays a text prompt.

Two layers, both conservative:
* `drop_edge_clauses`: Whisper punctuates pauses, so a leading/trailing clause made only of
  acknowledgement words ("Okay, the dog on the left.") is dropped before anything else is parsed;
* `strip_edges`: without punctuation, acknowledgement words at the edges are removed, and the caller
  uses the rest only when it is a command or an explicit label/prompt form.
"""

from __future__ import annotations

import re

# Words that carry no instruction at the edge of a command. Some ("okay", "yes", "fine") are also
# the accept command when said on their own; the grammar's phrase table decides that.
ACKNOWLEDGEMENTS: frozenset[str] = frozenset({
    "alright", "allright", "okay", "ok", "okey", "yes", "yeah", "yep", "yup", "yea", "sure", "cool", "great",
    "fine", "good", "perfect", "nice", "right", "hmm", "hm", "mm", "mhm", "um", "uh", "er", "erm", "ah",
    "oh", "so", "well", "now", "then", "and", "just", "please", "thanks", "thank", "you", "alrighty",
    "awesome", "excellent", "lovely", "fantastic", "correct", "exactly",
})
_PAIRS: frozenset[tuple[str, str]] = frozenset({("all", "right"), ("thank", "you"), ("o", "k")})

_CLAUSE_BREAK = re.compile(r"[,;:.!?…]+")
_WORD = re.compile(r"[a-z]+")


def is_acknowledgement(words: list[str]) -> bool:
    """True when `words` (normalised) are only acknowledgements and filler (and not empty)."""
    return bool(words) and not strip_edges(words)


def strip_edges(words: list[str], vocabulary: frozenset[str] = ACKNOWLEDGEMENTS,
                pairs: frozenset[tuple[str, str]] = _PAIRS) -> list[str]:
    """`words` without words of `vocabulary` (or `pairs` such as "all right") at either end."""
    start, end = 0, len(words)
    while start < end:
        if (start + 1 < end and (words[start], words[start + 1]) in pairs):
            start += 2
        elif words[start] in vocabulary:
            start += 1
        else:
            break
    while end > start:
        if end - 2 >= start and (words[end - 2], words[end - 1]) in pairs:
            end -= 2
        elif words[end - 1] in vocabulary:
            end -= 1
        else:
            break
    return words[start:end]


def _clause_words(clause: str) -> list[str]:
    return _WORD.findall(clause.lower())


def drop_edge_clauses(transcript: str) -> str:
    """The transcript without leading/trailing clauses that are only acknowledgements, keeping at
    least one clause: "Alright, next one." -> "next one."; "Okay." stays "Okay."."""
    parts = [p for p in _CLAUSE_BREAK.split(transcript) if p.strip()]
    if len(parts) < 2:
        return transcript
    while len(parts) > 1 and is_acknowledgement(_clause_words(parts[0])):
        parts = parts[1:]
    while len(parts) > 1 and is_acknowledgement(_clause_words(parts[-1])):
        parts = parts[:-1]
    return ", ".join(p.strip() for p in parts)
