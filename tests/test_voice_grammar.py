"""The spoken-command grammar on many phrasings, Whisper-style capitals and punctuation included."""

from __future__ import annotations

import pytest

from seem_annotator.voice.grammar import (
    ACTIONS,
    EmptyTranscriptError,
    VoiceCommand,
    match_label,
    normalise,
    parse,
)

LABELS = ["dog", "cat", "person", "traffic light", "horse", "berry", "bus", "fire_hydrant"]


@pytest.mark.parametrize("text, action", [
    ("Accept.", "accept"), ("accept it", "accept"), ("Done!", "accept"), ("Except.", "accept"), ("Okay.", "accept"),
    ("OK", "accept"), ("That's good.", "accept"), ("acept", "accept"), ("Accept the mask, please.", "accept"),
    ("Cancel.", "cancel"), ("Never mind.", "cancel"), ("Cancel it.", "cancel"), ("Discard", "cancel"),
    ("Undo.", "undo"), ("Undo that.", "undo"), ("undoo", "undo"), ("Take it back", "undo"),
    ("Redo.", "redo"), ("Re-do!", "redo"), ("Re do", "redo"),
    ("Delete.", "delete"), ("Delete this.", "delete"), ("Delete it, please.", "delete"), ("delet", "delete"),
    ("Next.", "next"), ("Next image, please.", "next"), ("next image please", "next"), ("Next one", "next"),
    ("Go to the next picture.", "next"), ("nexxt image", "next"),
    ("Previous.", "previous"), ("Previous image.", "previous"), ("Go back.", "previous"), ("Back", "previous"),
    ("previus image", "previous"),
    ("Everything.", "everything"), ("Segment everything.", "everything"), ("Find everything!", "everything"),
    ("everythin", "everything"),
    ("Add.", "add"), ("Add mode", "add"), ("Positive clicks", "add"),
    ("Remove.", "remove"), ("Negative.", "remove"), ("remove points", "remove"),
    ("Zoom in.", "zoom_in"), ("Zoom in a bit", "zoom_in"), ("zoomin", "zoom_in"), ("Zoom-in", "zoom_in"),
    ("Zoom out.", "zoom_out"), ("zoom out please", "zoom_out"), ("Zoom owt", "zoom_out"),
    ("Um, undo.", "undo"), ("Uh... next", "next"), ("No.", "cancel"), ("Oops!", "undo"),
    ("No, next image", "next"),
])
def test_commands(text: str, action: str) -> None:
    cmd = parse(text, LABELS)
    assert cmd.action == action, (text, cmd)
    assert cmd.text is None and cmd.label is None
    assert cmd.to_json() == {"action": action}


@pytest.mark.parametrize("text, prompt", [
    ("Segment the red car.", "red car"),
    ("Find the person on the left.", "person on the left"),
    ("Select a dog", "dog"),  # an explicit verb asks the model, even for a label name
    ("Please find the bicycle.", "bicycle"),
    ("Show me the tallest tree", "tallest tree"),
    ("Where is the cat?", "cat"),
    ("segmant the bicycle", "bicycle"),
    ("Highlight the window", "window"),
    ("Look for the umbrella.", "umbrella"),
])
def test_explicit_prompts(text: str, prompt: str) -> None:
    cmd = parse(text, LABELS)
    assert cmd.action == "prompt"
    assert cmd.text == prompt
    assert not cmd.guessed and not cmd.needs_confirmation
    assert cmd.to_json() == {"action": "prompt", "text": prompt}


@pytest.mark.parametrize("text, prompt", [
    ("The red car.", "red car"),
    ("red car next to the tree", "red car next to the tree"),
    ("A bowl of fruit", "bowl of fruit"),
    ("house", "house"),  # near "horse" (ratio 0.8) but not near enough to be a label
    ("text", "text"),  # near "next" (0.75): stays a prompt
    ("red", "red"),  # short words never fuzzy-match "redo"
    ("Label.", "label"),
    ("delta", "delta"),
    ("remote", "remote"),  # a COCO class, not "remove"
    ("plums", "plums"),  # not "plus"
    ("keeper", "keeper"),
])
def test_anything_else_is_a_prompt_shown_first(text: str, prompt: str) -> None:
    cmd = parse(text, LABELS)
    assert cmd.action == "prompt" and cmd.text == prompt
    assert cmd.guessed and cmd.needs_confirmation


@pytest.mark.parametrize("text, label", [
    ("Label it as dog.", "dog"), ("label this as a dog", "dog"), ("Label as cat", "cat"),
    ("Label that as traffic light.", "traffic light"), ("Labelled as person", "person"),
    ("lable it as horse", "horse"), ("Relabel it as cat", "cat"), ("Set the label to dog.", "dog"),
    ("Call it a horse", "horse"), ("It's a horse.", "horse"), ("This is a traffic light", "traffic light"),
    ("Label it as dogs", "dog"), ("Label it as doggo", "dog"), ("label it as fire hydrant", "fire_hydrant"),
    ("Dog.", "dog"), ("Dogs", "dog"), ("cat", "cat"), ("Traffic lights!", "traffic light"),
    ("berries", "berry"), ("buses", "bus"), ("Persn", "person"), ("fire hydrant", "fire_hydrant"),
    ("Tag it as cat", "cat"), ("Mark as person", "person"), ("No, label it as cat.", "cat"),
    ("Actually, it's a horse", "horse"), ("Sorry, dog", "dog"),
])
def test_labels(text: str, label: str) -> None:
    cmd = parse(text, LABELS)
    assert cmd.action == "label", (text, cmd)
    assert cmd.label == label
    assert cmd.to_json() == {"action": "label", "label": label}
    assert not cmd.needs_confirmation


def test_new_label_is_kept_as_spoken_when_not_in_the_list() -> None:
    cmd = parse("Label it as a Pink Flamingo.", LABELS)
    assert cmd.to_json() == {"action": "label", "label": "pink flamingo"}


def test_bare_word_is_a_label_only_when_it_is_one() -> None:
    assert parse("zebra", LABELS).action == "prompt"
    assert parse("zebra", LABELS + ["zebra"]).to_json() == {"action": "label", "label": "zebra"}
    assert parse("dog", []).action == "prompt"


def test_irreversible_actions_need_confirmation() -> None:
    assert parse("accept").needs_confirmation
    assert parse("delete").needs_confirmation
    for text in ("next", "undo", "zoom in", "segment the car", "label it as dog"):
        assert not parse(text, LABELS).needs_confirmation, text


def test_fuzzy_flag_marks_near_misses() -> None:
    assert parse("acept").fuzzy and not parse("accept").fuzzy
    assert parse("Label it as doggo", LABELS).fuzzy


@pytest.mark.parametrize("text", ["", "   ", "...", "Um.", "uh, um"])
def test_empty_transcript_is_a_user_error(text: str) -> None:
    with pytest.raises(EmptyTranscriptError):
        parse(text)


def test_every_parse_yields_a_known_action() -> None:
    phrases = ["Accept.", "the dog", "Label it as x", "zoom", "!!!!!!!!a", "ça va", "123", "next next next"]
    for text in phrases:
        assert parse(text, LABELS).action in ACTIONS


def test_normalise() -> None:
    assert normalise("Label it as Dog.") == "label it as dog"
    assert normalise("  Re-do!  ") == "re do"
    assert normalise("Café, über_alles") == "cafe uber alles"


def test_match_label() -> None:
    assert match_label("Traffic-Light", LABELS) == "traffic light"
    assert match_label("fire hydrants", LABELS) == "fire_hydrant"
    assert match_label("hors", LABELS) == "horse"
    assert match_label("hors", LABELS, cutoff=None) is None
    assert match_label("car", LABELS) is None  # short words match exactly only ("cat")
    assert match_label("dog", []) is None


def test_describe() -> None:
    assert VoiceCommand("prompt", text="red car").describe() == 'prompt "red car"'
    assert VoiceCommand("label", label="dog").describe() == "label: dog"
    assert VoiceCommand("zoom_in").describe() == "zoom in"


@pytest.mark.parametrize("text, action", [
    ("Alright, next one.", "next"), ("Yes, done.", "accept"), ("Hmm, undo that please.", "undo"),
    ("hmm undo that please", "undo"), ("That looks fine, okay.", "accept"), ("Okay, next.", "next"),
    ("ok cool next image", "next"), ("Right, go back.", "previous"), ("Yeah, that's good.", "accept"),
    ("Alright, delete it.", "delete"), ("Uh, okay, accept it.", "accept"), ("Great, next!", "next"),
    ("Fine, done.", "accept"), ("Sure, undo.", "undo"), ("Okay so next one", "next"),
    ("Next one, please, thanks.", "next"), ("That's fine.", "accept"), ("Looks fine.", "accept"),
    ("All right, next.", "next"), ("Good, move on.", "next"), ("Alright, cancel that.", "cancel"),
    ("Perfect, next.", "next"), ("Yep.", "accept"), ("Yup, accept.", "accept"), ("Nah, cancel.", "cancel"),
    ("Um, redo that.", "redo"), ("Go to the next image, okay?", "next"), ("go to the next image okay", "next"),
    ("Okay, zoom out.", "zoom_out"), ("Alright, alright, next.", "next"), ("Okay so undo that", "undo"),
    ("Thanks, that's it.", "accept"), ("Yes, okay.", "accept"), ("All right.", "accept"),
    ("So, previous image then.", "previous"), ("Well, segment everything.", "everything"),
    ("Cool, zoom in a bit.", "zoom_in"), ("Oh, oops, undo.", "undo"), ("Mhm, looks good.", "accept"),
    ("Okay, that works.", "accept"), ("Nope.", "cancel"), ("Great, that'll do.", "accept"),
    ("yeah next", "next"), ("okay okay done", "accept"), ("Right, remove points.", "remove"),
    ("Alright then, add mode.", "add"), ("Okay, delete this one, please.", "delete"),
])
def test_commands_wrapped_in_filler(text: str, action: str) -> None:
    cmd = parse(text, LABELS)
    assert cmd.action == action, (text, cmd)
    assert not cmd.guessed and cmd.to_json() == {"action": action}


@pytest.mark.parametrize("text, prompt", [
    ("The dog on the left.", "dog on the left"), ("Okay, the dog on the left.", "dog on the left"),
    ("The dog on the right", "dog on the right"), ("next to the tree", "next to the tree"),
    ("right arm", "right arm"), ("fine sand", "fine sand"), ("good boy", "good boy"), ("cool car", "cool car"),
    ("great dane", "great dane"), ("perfect circle", "perfect circle"), ("the last person", "last person"),
    ("all the cups", "all the cups"), ("The car that looks fine", "car that looks fine"),
    ("next car on the right", "next car on the right"), ("Hmm, the red one, okay.", "red one"),
])
def test_descriptions_with_filler_words_stay_prompts(text: str, prompt: str) -> None:
    cmd = parse(text, LABELS)
    assert cmd.action == "prompt" and cmd.text == prompt, (text, cmd)


@pytest.mark.parametrize("text, expected", [
    ("Okay, label it as dog.", ("label", "dog")), ("okay label it as dog", ("label", "dog")),
    ("Alright, find the red car.", ("prompt", "red car")), ("alright find the red car", ("prompt", "red car")),
    ("Yes, it's a horse.", ("label", "horse")), ("Okay, dog.", ("label", "dog")),
])
def test_labels_and_prompts_wrapped_in_filler(text: str, expected: tuple[str, str]) -> None:
    cmd = parse(text, LABELS)
    assert (cmd.action, cmd.label or cmd.text) == expected, (text, cmd)
    assert not cmd.guessed
