"""Frames as the tracker needs them, each decoded once per propagation step and kept in a small LRU.

A propagation step touches the previous and the current frame (twice each: flow and model), and a
run over several tracks walks the same frames again; the cache keeps the last few decoded frames
(model proxy plus a small grey copy for optical flow) so a frame is not decoded again while it is
still near the current one. Backends cache their own per-image features by `ImageInput.key`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from seem_annotator.core import images as imgio
from seem_annotator.engine.types import ImageInput


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame: the model's input and a grey copy at the flow resolution."""

    image: ImageInput
    gray: np.ndarray

    @property
    def full_size(self) -> tuple[int, int]:
        return self.image.full_size


def make_frame(key: str, pixels: np.ndarray, full_size: tuple[int, int], flow_side: int) -> Frame:
    h, w = pixels.shape[:2]
    factor = min(1.0, flow_side / max(h, w))
    gray = cv2.cvtColor(np.ascontiguousarray(pixels[..., :3]), cv2.COLOR_RGB2GRAY)
    if factor < 1.0:
        gray = cv2.resize(gray, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    return Frame(ImageInput(key=key, pixels=pixels, full_size=full_size), gray)


class FrameCache:
    """Decoded frames by key, least recently used dropped beyond `capacity`. Thread-safe.

    `counts` says how often each key was decoded (tests check a frame is not decoded twice)."""

    def __init__(self, capacity: int = 8, max_side: int = 1024, flow_side: int = 480) -> None:
        self.capacity = max(2, capacity)
        self.max_side = max_side
        self.flow_side = flow_side
        self.counts: dict[str, int] = {}
        self._frames: OrderedDict[str, Frame] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, path: Path | Callable[[], Path]) -> Frame:
        with self._lock:
            frame = self._frames.get(key)
            if frame is not None:
                self._frames.move_to_end(key)
                return frame
        file = path() if callable(path) else path
        proxy = imgio.load_for_model(file, self.max_side)
        frame = make_frame(key, proxy.pixels, proxy.full_size, self.flow_side)
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            self._frames[key] = frame
            while len(self._frames) > self.capacity:
                self._frames.popitem(last=False)
        return frame
