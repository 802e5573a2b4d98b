"""A small spoken-command grammar, matched fuzzily.

Whisper hands us text such as "Label it as dog." or "Next image, please."; `parse` turns it into a
`VoiceCommand` whose `action` is one of `ACTIONS`. Matching order, most specific first:

1. "label [it/this/that] as X", "call it X", "this is a X" -> `label` (X matched to the label list);
2. a command phrase ("accept", "zoom in", "next image", ...) spelled exactly;
3. a project label spoken on its own ("dog") -> `label`;
4. a command phrase within a small edit distance ("acept", "nxt image") -> that command;
5. a prompt verb ("segment / find / select the red car") -> `prompt` with the noun phrase;
6. a label within a small edit distance -> `label`;
7. anything else -> `prompt` with the whole text, flagged as a guess so the GUI shows it first.

Acknowledgements around a command ("Alright, next one", "yes done", "that looks fine, okay") are
dropped first where they form their own clause, and at the edges when what is left is a command or
an explicit label/prompt form (voice/fillers.py); descriptions such as "right arm" keep them.

Only the standard library is used (difflib for the fuzzy part), so the CLI and tests can check the
grammar without audio or models.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from seem_annotator.errors import UserError
from seem_annotator.voice.fillers import drop_edge_clauses, strip_edges

ACTIONS: tuple[str, ...] = (
    "prompt", "label", "accept", "cancel", "undo", "redo", "delete", "next", "previous",
    "everything", "add", "remove", "zoom_in", "zoom_out",
)

# Actions that lose or commit work: the GUI shows the transcript and waits for confirmation.
IRREVERSIBLE: frozenset[str] = frozenset({"accept", "delete"})

# Spoken forms of each command, already normalised. Words in `_IGNORABLE` are dropped before
# comparing, so "delete this", "next image please" and "undo that" need no entry of their own.
_COMMAND_PHRASES: dict[str, tuple[str, ...]] = {
    "accept": ("accept", "done", "okay", "ok", "confirm", "yes", "good", "looks good", "keep",
               "save", "that is good", "that s good", "thats good", "perfect",
               "except",  # Whisper's usual mishearing of a clipped "accept"
               "yeah", "yep", "yup", "sure", "fine", "great", "alright", "all right", "correct",
               "looks fine", "looks great", "looks right", "looks ok", "looks okay", "looks correct",
               "looks perfect", "that is fine", "that s fine", "thats fine", "that s it", "thats it",
               "that is it", "all good", "good enough", "that works", "that will do", "that ll do"),
    "cancel": ("cancel", "discard", "never mind", "nevermind", "abort", "escape", "forget", "no", "stop",
               "nope", "nah", "scrap", "throw away", "get rid of"),
    "undo": ("undo", "undo last", "take back", "oops"),
    "redo": ("redo", "do again", "re do"),
    "delete": ("delete", "erase", "delete selected", "delete selection"),
    "next": ("next", "forward", "skip", "go next", "go forward", "go to next", "move on"),
    "previous": ("previous", "back", "go back", "prev", "go to previous", "last"),
    "everything": ("everything", "segment everything", "find everything", "select everything",
                   "segment all", "find all", "all objects", "all", "auto", "automatic"),
    "add": ("add", "positive", "plus", "include", "add mode", "add points"),
    "remove": ("remove", "negative", "minus", "exclude", "subtract"),
    "zoom_in": ("zoom in", "zoomin", "closer", "magnify"),
    "zoom_out": ("zoom out", "zoomout"),
}

# Dropped when matching commands (never from prompt text).
_IGNORABLE: frozenset[str] = frozenset({
    "the", "a", "an", "it", "this", "that", "them", "please", "now", "image", "picture", "photo",
    "one", "mode", "clicks", "click", "point", "points", "object", "mask", "thanks", "thank", "you",
    "again", "to", "on", "go", "more", "bit", "little", "selected",
})

# Filler Whisper often keeps at the edges of an utterance.
_FILLERS: frozenset[str] = frozenset({
    "um", "uh", "er", "erm", "hmm", "ah", "please", "so", "well", "now", "then", "and", "oh",
    "thanks", "can", "could", "would", "you", "i", "want", "to", "let", "s", "lets", "me", "like",
})

# Leading words that announce a correction ("No, label it as cat"); dropped when more follows, so a
# bare "no" (cancel) or "oops" (undo) keeps its meaning.
_CORRECTIONS: frozenset[str] = frozenset({"no", "nope", "nah", "actually", "sorry", "oops", "wait", "instead"})

_PROMPT_VERBS: tuple[tuple[str, ...], ...] = (
    ("segment",), ("find",), ("select",), ("show", "me"), ("show",), ("get",), ("mark",),
    ("outline",), ("highlight",), ("look", "for"), ("where", "is"), ("where", "are"), ("pick",),
    ("detect",), ("cut", "out"), ("click", "on"), ("choose",), ("locate",),
)

_ARTICLES: frozenset[str] = frozenset({"the", "a", "an", "some", "that", "this", "those", "these"})

# "label it as dog", "label as dog", "call it dog", "this is a dog", "set label to dog", ...
_LABEL_PATTERNS: tuple[re.Pattern[str], ...] = tuple(re.compile(p) for p in (
    r"^(?:re)?label(?:ed)?(?: (?:it|this|that|them|these|those|the mask|the object|the selection))?"
    r"(?: (?:as|to))? (?P<name>.+)$",
    r"^(?:set|change) (?:the )?label(?: (?:to|as))? (?P<name>.+)$",
    r"^(?:call|name|tag|mark) (?:it|this|that|them)(?: (?:as|a|an))? (?P<name>.+)$",
    r"^(?:tag|mark) as (?P<name>.+)$",
    r"^(?:it s|its|it is|this is|that s|thats|that is|these are|those are)(?: (?:a|an|the))? (?P<name>.+)$",
    r"^class (?P<name>.+)$",
))

# difflib ratios: a near-miss must be this close to count ("acept" -> 0.91, "text"/"next" -> 0.75).
_COMMAND_CUTOFF = 0.85  # "remote" must not become "remove" (0.83); "acept" (0.91) may
# Near-misses are only accepted for these command words, and only with the same first letter:
# everyday words such as "plus" or "keep" must be said exactly, or "plums" would switch polarity.
_FUZZY_PHRASES: frozenset[str] = frozenset({
    "accept", "confirm", "cancel", "discard", "undo", "redo", "delete", "next", "previous",
    "everything", "segment everything", "remove", "zoom in", "zoom out",
})
_LABEL_CUTOFF = 0.85  # "house" must stay a prompt when the labels hold "horse" (ratio 0.8)
_LABEL_CUTOFF_EXPLICIT = 0.6  # "label it as doggo": the speaker told us it is a label
_MIN_FUZZY_LEN = 4  # "red" must not become "redo": short words only match exactly


class EmptyTranscriptError(UserError):
    """The utterance held no words (silence, or only filler such as "um")."""


@dataclass(frozen=True)
class VoiceCommand:
    """One parsed utterance.

    `action` is one of `ACTIONS`; `text` is set for `prompt`, `label` for `label`. `transcript` is
    what was parsed. `guessed` is true when nothing in the grammar matched and the whole
    transcript became a prompt; `fuzzy` when a near-miss was accepted.
    """

    action: str
    text: str | None = None
    label: str | None = None
    transcript: str = ""
    guessed: bool = False
    fuzzy: bool = False

    @property
    def needs_confirmation(self) -> bool:
        """True when the GUI should show the command and wait before running it."""
        return self.action in IRREVERSIBLE or self.guessed

    def to_json(self) -> dict[str, str]:
        """The CLI's JSON form: `action`, plus `text` or `label` where they apply."""
        out = {"action": self.action}
        if self.text is not None:
            out["text"] = self.text
        if self.label is not None:
            out["label"] = self.label
        return out

    def describe(self) -> str:
        """Short human-readable form for the GUI, e.g. `prompt "red car"` or `label: dog`."""
        if self.action == "prompt":
            return f'prompt "{self.text}"'
        if self.action == "label":
            return f"label: {self.label}"
        return self.action.replace("_", " ")


def normalise(text: str) -> str:
    """Lower-case, strip accents' combining marks, turn punctuation into spaces, squeeze spaces.

    "Label it as Dog." -> "label it as dog"; "Re-do!" -> "re do"; "T-shirt" -> "t shirt".
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    text = re.sub(r"[^\w\s]|_", " ", text)
    return " ".join(text.split())


def _strip_fillers(words: list[str]) -> list[str]:
    return strip_edges(words, _FILLERS, frozenset())


def _command_key(words: Sequence[str]) -> str:
    return " ".join(w for w in words if w not in _IGNORABLE)


def _label_key(name: str) -> str:
    return normalise(name)


def _number_forms(phrase: str) -> set[str]:
    """The phrase with its last word in singular and plural guesses: "horses" -> {"horses", "horse",
    "hors"}, "berry" -> {"berry", "berrys", "berries"}; two phrases match when the sets meet."""
    words = phrase.split()
    if not words:
        return set()
    head, last = words[:-1], words[-1]
    forms = {last, last + "s", last + "es"}
    if last.endswith("s") and len(last) > 2:
        forms.add(last[:-1])
    if last.endswith("es") and len(last) > 3:
        forms.add(last[:-2])
    if last.endswith("ies") and len(last) > 4:
        forms.add(last[:-3] + "y")
    if last.endswith("y") and len(last) > 2:
        forms.add(last[:-1] + "ies")
    return {" ".join(head + [f]) for f in forms}


def _ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def _phrase_keys() -> list[tuple[str, str, str]]:
    # (action, key, key without spaces) for every phrase, reduced the same way as the transcript.
    keys = []
    for action, phrases in _COMMAND_PHRASES.items():
        for phrase in phrases:
            key = _command_key(phrase.split())
            if key:
                keys.append((action, key, key.replace(" ", "")))
    return keys


_PHRASE_KEYS = _phrase_keys()


def _match_command(key: str, fuzzy: bool) -> str | None:
    if not key:
        return None
    compact = key.replace(" ", "")
    best, best_score = None, 0.0
    for action, phrase, phrase_compact in _PHRASE_KEYS:
        if key == phrase or compact == phrase_compact:
            return action
        if (not fuzzy or phrase not in _FUZZY_PHRASES or compact[0] != phrase_compact[0]
                or min(len(compact), len(phrase_compact)) < _MIN_FUZZY_LEN):
            continue
        score = max(_ratio(key, phrase), _ratio(compact, phrase_compact))
        if score > best_score:
            best, best_score = action, score
    return best if fuzzy and best_score >= _COMMAND_CUTOFF else None


def match_label(name: str, labels: Iterable[str], cutoff: float | None = _LABEL_CUTOFF) -> str | None:
    """The project label `name` refers to, or None.

    Exact (case, punctuation and `_`/`-` ignored) first, then singular/plural, then (unless
    `cutoff` is None) the closest label by difflib ratio at or above `cutoff`. Returns the label as
    spelled in `labels`.
    """
    keyed = {}
    for label in labels:
        keyed.setdefault(_label_key(label), label)
    key = _label_key(name)
    if not key or not keyed:
        return None
    if key in keyed:
        return keyed[key]
    forms = _number_forms(key)
    for candidate, label in keyed.items():
        if key in _number_forms(candidate) or candidate in forms:
            return label
    if cutoff is None or len(key.replace(" ", "")) < _MIN_FUZZY_LEN:
        return None
    close = difflib.get_close_matches(key, list(keyed), n=1, cutoff=cutoff)
    return keyed[close[0]] if close else None


def _strip_articles(words: list[str]) -> list[str]:
    while words and words[0] in _ARTICLES:
        words = words[1:]
    return words


def _prompt_after_verb(words: list[str]) -> tuple[list[str], bool] | None:
    """The noun phrase after a prompt verb, and whether the verb was a near-miss; None if no verb."""
    for verb in _PROMPT_VERBS:
        if tuple(words[: len(verb)]) == verb and len(words) > len(verb):
            return words[len(verb):], False
    first = words[0] if words else ""
    if len(words) > 1 and len(first) >= _MIN_FUZZY_LEN + 1:
        singles = [v[0] for v in _PROMPT_VERBS if len(v) == 1 and len(v[0]) >= _MIN_FUZZY_LEN + 1]
        if difflib.get_close_matches(first, singles, n=1, cutoff=_COMMAND_CUTOFF):
            return words[1:], True
    return None


def parse(transcript: str, labels: Iterable[str] = ()) -> VoiceCommand:
    """Parse one utterance into a `VoiceCommand`; `labels` is the project's label list."""
    labels = list(labels)
    # "Alright, next one." / "Okay, the dog on the left": a clause of acknowledgements is dropped.
    words = _strip_fillers(normalise(drop_edge_clauses(transcript)).split())
    while len(words) > 1 and words[0] in _CORRECTIONS:
        words = _strip_fillers(words[1:])
    if not words:
        raise EmptyTranscriptError("Nothing to act on: the transcript is empty.")
    if len(words) > 1 and difflib.get_close_matches(words[0], ("label", "labeled", "labelled"), n=1, cutoff=0.8):
        words[0] = "label"  # "lable it as dog", "labelled as dog"
    text = " ".join(words)

    key = _command_key(words)
    action = _match_command(key, fuzzy=False)
    if action:
        return VoiceCommand(action, transcript=transcript)
    core = strip_edges(words)  # "okay so next one", "go to the next image okay", "yes done"
    if core and core != words:
        action = _match_command(_command_key(core), fuzzy=False)
        if action:
            return VoiceCommand(action, transcript=transcript)
        core_text = " ".join(core)
        if any(pattern.match(core_text) for pattern in _LABEL_PATTERNS) or _prompt_after_verb(core) is not None:
            words, text = core, core_text  # "okay label it as dog", "alright find the red car"

    for pattern in _LABEL_PATTERNS:
        m = pattern.match(text)
        if m:
            name = " ".join(_strip_fillers(_strip_articles(m.group("name").split())))
            if name:
                known = match_label(name, labels, cutoff=_LABEL_CUTOFF_EXPLICIT)
                return VoiceCommand("label", label=known or name, transcript=transcript,
                                    fuzzy=known is not None and _label_key(known) != name)

    phrase = " ".join(_strip_articles(words))
    known = match_label(phrase, labels, cutoff=None)  # exact / plural only here
    if known:
        return VoiceCommand("label", label=known, transcript=transcript)

    action = _match_command(key, fuzzy=True)
    if action:
        return VoiceCommand(action, transcript=transcript, fuzzy=True)

    after = _prompt_after_verb(words)
    if after is not None:
        noun, fuzzy_verb = after
        noun = _strip_articles(noun)
        if noun:
            # "find everything" is handled above; "select the dog" with a label "dog" is a prompt
            # on purpose: the user asked the model to find one.
            return VoiceCommand("prompt", text=" ".join(noun), transcript=transcript, fuzzy=fuzzy_verb)

    known = match_label(phrase, labels)
    if known:
        return VoiceCommand("label", label=known, transcript=transcript, fuzzy=True)

    return VoiceCommand("prompt", text=phrase or text, transcript=transcript, guessed=True)
