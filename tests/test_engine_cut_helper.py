"""The second-core cut helper: the same cut as in the caller, and a click that still answers when
the helper dies or stalls."""

from __future__ import annotations

import os
import signal
import sys
import time

import cv2
import numpy as np
import pytest
from conftest import REPO_ROOT
from PIL import Image

from seem_annotator.core.masks import mask_iou
from seem_annotator.core.prompts import PointPrompt
from seem_annotator.engine import classical_backend
from seem_annotator.engine.classical_backend import ClassicalBackend
from seem_annotator.engine.classical_cut import CutSettings, WorkingImage
from seem_annotator.engine.classical_rules import first_answer
from seem_annotator.engine.cut_helper import CutHelper, shared_helper
from seem_annotator.engine.types import DecodeRequest, ImageInput


def _chelsea() -> ImageInput:
    pixels = np.asarray(Image.open(REPO_ROOT / "resources" / "samples" / "chelsea.jpg").convert("RGB"))
    return ImageInput(key="chelsea", pixels=pixels, full_size=pixels.shape[:2])


def _grid() -> np.ndarray:
    rgb = _chelsea().pixels
    h, w = rgb.shape[:2]
    return cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (320, round(320 * h / w)), interpolation=cv2.INTER_AREA)


def _click(shape: tuple[int, int], x: int, y: int) -> np.ndarray:
    seeds = np.zeros(shape, bool)
    seeds[y, x] = True
    return seeds


SETTINGS = CutSettings(hard_radius=3, probable_radius=11, first_iterations=3)


@pytest.fixture
def helper():
    own = CutHelper()
    yield own
    own.close()


def test_the_helpers_cut_is_the_callers(helper):
    bgr = _grid()
    pos, neg = _click(bgr.shape[:2], 200, 80), np.zeros(bgr.shape[:2], bool)
    ticket = helper.submit("chelsea:grid", WorkingImage(bgr, 4), pos, neg, SETTINGS)
    assert ticket is not None
    made = helper.take(ticket)
    here = first_answer(WorkingImage(bgr, 4), pos, neg, SETTINGS)
    assert made is not None and made.sum() > 100
    assert np.array_equal(made, here)


def test_only_the_answer_asked_for_is_given_and_the_older_ones_are_dropped(helper):
    bgr = _grid()
    image, neg = WorkingImage(bgr, 4), np.zeros(bgr.shape[:2], bool)
    tickets = [helper.submit("chelsea:grid", image, _click(neg.shape, x, 80), neg, SETTINGS) for x in (60, 200, 250)]
    last = helper.take(tickets[-1])
    assert np.array_equal(last, first_answer(WorkingImage(bgr, 4), tickets[-1].pos, neg, SETTINGS))
    pid = helper._process.pid
    assert helper.take(tickets[0]) is None  # passed over: gone at once, and the helper stays
    ticket = helper.submit("chelsea:grid", image, tickets[1].pos, neg, SETTINGS)
    assert helper._process.pid == pid
    assert np.array_equal(helper.take(ticket), first_answer(WorkingImage(bgr, 4), tickets[1].pos, neg, SETTINGS))


def test_a_killed_helper_gives_no_answer_and_is_replaced(helper):
    bgr = _grid()
    image, neg = WorkingImage(bgr, 4), np.zeros(bgr.shape[:2], bool)
    pos = _click(neg.shape, 200, 80)
    ticket = helper.submit("chelsea:grid", image, pos, neg, SETTINGS)
    first_pid = helper._process.pid
    helper._process.kill()
    started = time.monotonic()
    assert helper.take(ticket, timeout=60) is None
    assert time.monotonic() - started < 30  # its death is noticed, not waited out
    ticket = helper.submit("chelsea:grid", image, pos, neg, SETTINGS)
    assert helper._process.pid != first_pid
    assert np.array_equal(helper.take(ticket), first_answer(WorkingImage(bgr, 4), pos, neg, SETTINGS))


@pytest.mark.skipif(sys.platform == "win32", reason="SIGSTOP is POSIX")
def test_a_stalled_helper_is_waited_for_only_so_long(helper):
    bgr = _grid()
    neg = np.zeros(bgr.shape[:2], bool)
    helper.start()
    process = helper._process
    os.kill(process.pid, signal.SIGSTOP)
    try:
        ticket = helper.submit("chelsea:grid", WorkingImage(bgr, 4), _click(neg.shape, 200, 80), neg, SETTINGS)
        assert helper.take(ticket, timeout=0.5) is None
        assert process.wait(timeout=10) is not None  # dropped: killed
    finally:
        if process.poll() is None:
            process.kill()


def _speck_click(backend: ClassicalBackend) -> np.ndarray:
    """The left eye, then the cat's cheek (a click whose own cut adds only a speck)."""
    image = _chelsea()
    ask = backend.predict
    first = ask(DecodeRequest(image=image, object_id="o", round_index=0, prompts=(PointPrompt(170, 110),)))
    after = ask(DecodeRequest(image=image, object_id="o", round_index=1,
                              prompts=(PointPrompt(170, 110), PointPrompt(390, 170)), memory=first.memory))
    assert not first.mask[170, 390] and after.mask[170, 390]
    return after.mask


def test_a_click_answers_the_same_with_the_helper_without_it_and_with_it_dead():
    with_helper = _speck_click(ClassicalBackend(second_core=True))
    without = _speck_click(ClassicalBackend(second_core=False))
    assert mask_iou(with_helper, without) > 0.99
    process = shared_helper()._process
    assert process is not None and process.poll() is None  # it was used
    process.kill()
    process.wait(timeout=10)
    after_death = _speck_click(ClassicalBackend(second_core=True))
    assert mask_iou(after_death, without) > 0.99


def test_one_core_means_no_helper(monkeypatch):
    monkeypatch.setattr(classical_backend, "available_cores", lambda: 1)
    assert not ClassicalBackend().second_core
    assert ClassicalBackend(second_core=True).second_core


def test_encoding_an_image_starts_the_helper_and_a_first_click_alone_does_not(monkeypatch):
    own = CutHelper()
    monkeypatch.setattr(classical_backend, "shared_helper", lambda: own)
    backend = ClassicalBackend(second_core=True)
    image = _chelsea()
    backend.predict(DecodeRequest(image=image, object_id="o", round_index=0, prompts=(PointPrompt(170, 110),)))
    assert own._process is None  # e.g. the video tracker's automatic prompts
    backend.encode(image)
    assert own._process is not None and own._process.poll() is None
    own.close()
