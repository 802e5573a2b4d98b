"""Label colours that differ from each other and stand out on photographs.

A new label takes, from a fixed set of saturated candidates, the colour farthest (CIE76 distance in
CIELAB, roughly how different two colours look) from the colours the project's labels already
have, so labels stay distinguishable even after users picked some colours themselves. The first
colour is a magenta-pink, rare in photographs (the golden-ratio hue walk used before started at an
orange that vanished on an orange suit). Greys and pastels are never candidates.
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterable
from functools import lru_cache

import numpy as np

RGB = tuple[int, int, int]

FIRST = (255, 51, 204)


def _candidates() -> list[RGB]:
    colors = []
    for hue_step in range(36):
        for saturation, value in ((1.0, 1.0), (0.9, 0.75), (0.85, 0.55)):
            r, g, b = colorsys.hsv_to_rgb(hue_step / 36, saturation, value)
            colors.append((round(r * 255), round(g * 255), round(b * 255)))
    return colors


def to_lab(colors: Iterable[RGB]) -> np.ndarray:
    """(n, 3) CIELAB (D65) of sRGB triples."""
    rgb = np.asarray(list(colors), dtype=np.float64).reshape(-1, 3) / 255.0
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


_CANDIDATES = _candidates()
_CANDIDATE_LAB = to_lab(_CANDIDATES)


def pick_color(existing: Iterable[RGB]) -> RGB:
    """The candidate colour farthest from every colour in `existing` (FIRST when there is none)."""
    taken = list(existing)
    if not taken:
        return FIRST
    distance = np.linalg.norm(_CANDIDATE_LAB[:, None, :] - to_lab(taken)[None, :, :], axis=2).min(axis=1)
    return _CANDIDATES[int(np.argmax(distance))]  # first maximum: deterministic


@lru_cache(maxsize=1)
def _sequence(length: int = 64) -> tuple[RGB, ...]:
    colors: list[RGB] = []
    for _ in range(length):
        colors.append(pick_color(colors))
    return tuple(colors)


def default_color(index: int) -> RGB:
    """The index-th colour of a project whose labels all kept their default colours."""
    sequence = _sequence()
    return sequence[index % len(sequence)]


def contrast_color(color: RGB) -> RGB:
    """Black or white, whichever stands out more against `color` (a halo for outlines, text on a chip)."""
    r, g, b = color
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)
