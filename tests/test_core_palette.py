"""Label colours differ from each other and from the colours users picked, and outlines get a
contrasting halo (issue 15 item 11)."""

from __future__ import annotations

import colorsys
import itertools

import numpy as np

from seem_annotator.core import palette


def min_distance(colors) -> float:
    lab = palette.to_lab(colors)
    return min(float(np.linalg.norm(a - b)) for a, b in itertools.combinations(lab, 2))


def test_lab_conversion_matches_reference_values() -> None:
    # CIELAB of sRGB white, black and pure red (D65), as published.
    lab = palette.to_lab([(255, 255, 255), (0, 0, 0), (255, 0, 0)])
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=0.1)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=0.1)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.3)


def test_default_colours_are_saturated_and_far_apart() -> None:
    colors = [palette.default_color(i) for i in range(12)]
    assert len(set(colors)) == 12
    assert min_distance(colors[:8]) > 60 and min_distance(colors) > 40  # CIE76; ~2.3 is "just noticeable"
    for r, g, b in colors:
        _h, s, v = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
        assert s >= 0.8 and v >= 0.5, "no greys or pastels: they vanish on photographs"
    assert colors[0] == palette.FIRST  # not the orange that vanished on an orange suit


def test_a_new_label_avoids_colours_users_picked(tmp_path) -> None:
    from seem_annotator.core.project import Project

    with Project.create(tmp_path) as project:
        project.add_label("a")  # FIRST
        project.add_label("b", color=palette.default_color(1))  # the colour the next default would be
        c = project.add_label("c")
        colors = [lab.color for lab in project.labels()]
    assert c.color not in colors[:2]
    assert min_distance(colors) > 60


def test_contrast_colour_is_the_one_that_stands_out() -> None:
    assert palette.contrast_color((255, 140, 0)) == (0, 0, 0)  # orange: black halo
    assert palette.contrast_color((20, 30, 140)) == (255, 255, 255)  # dark blue: white halo
