"""The prompt templates SEEM averages class-name embeddings over.

81 templates: the bare ``"{}."`` followed by the 80 ImageNet prompt-ensemble templates of CLIP
(Radford et al. 2021), in the order of the official SEEM code (``utils/prompt_engineering.py``;
often described as "the 80 templates"). The order does not change the mean but is kept so
intermediate results line up when debugging against the reference.
"""

from __future__ import annotations

PROMPT_TEMPLATES: tuple[str, ...] = (
    '{}.',
    'a photo of a {}.',
    'a bad photo of a {}.',
    'a photo of many {}.',
    'a sculpture of a {}.',
    'a photo of the hard to see {}.',
    'a low resolution photo of the {}.',
    'a rendering of a {}.',
    'graffiti of a {}.',
    'a bad photo of the {}.',
    'a cropped photo of the {}.',
    'a tattoo of a {}.',
    'the embroidered {}.',
    'a photo of a hard to see {}.',
    'a bright photo of a {}.',
    'a photo of a clean {}.',
    'a photo of a dirty {}.',
    'a dark photo of the {}.',
    'a drawing of a {}.',
    'a photo of my {}.',
    'the plastic {}.',
    'a photo of the cool {}.',
    'a close-up photo of a {}.',
    'a black and white photo of the {}.',
    'a painting of the {}.',
    'a painting of a {}.',
    'a pixelated photo of the {}.',
    'a sculpture of the {}.',
    'a bright photo of the {}.',
    'a cropped photo of a {}.',
    'a plastic {}.',
    'a photo of the dirty {}.',
    'a jpeg corrupted photo of a {}.',
    'a blurry photo of the {}.',
    'a photo of the {}.',
    'a good photo of the {}.',
    'a rendering of the {}.',
    'a {} in a video game.',
    'a photo of one {}.',
    'a doodle of a {}.',
    'a close-up photo of the {}.',
    'the origami {}.',
    'the {} in a video game.',
    'a sketch of a {}.',
    'a doodle of the {}.',
    'a origami {}.',
    'a low resolution photo of a {}.',
    'the toy {}.',
    'a rendition of the {}.',
    'a photo of the clean {}.',
    'a photo of a large {}.',
    'a rendition of a {}.',
    'a photo of a nice {}.',
    'a photo of a weird {}.',
    'a blurry photo of a {}.',
    'a cartoon {}.',
    'art of a {}.',
    'a sketch of the {}.',
    'a embroidered {}.',
    'a pixelated photo of a {}.',
    'itap of the {}.',
    'a jpeg corrupted photo of the {}.',
    'a good photo of a {}.',
    'a plushie {}.',
    'a photo of the nice {}.',
    'a photo of the small {}.',
    'a photo of the weird {}.',
    'the cartoon {}.',
    'art of the {}.',
    'a drawing of the {}.',
    'a photo of the large {}.',
    'a black and white photo of a {}.',
    'the plushie {}.',
    'a dark photo of a {}.',
    'itap of a {}.',
    'graffiti of the {}.',
    'a toy {}.',
    'itap of my {}.',
    'a photo of a cool {}.',
    'a photo of a small {}.',
    'a tattoo of the {}.',
)

# Suffixes of COCO panoptic class names that SEEM strips before formatting a template
# ("wall-other-merged" -> "wall").
CLASS_NAME_SUFFIXES: tuple[str, ...] = ("-other", "-merged", "-stuff")


def clean_class_name(name: str) -> str:
    """``"wall-other-merged"`` -> ``"wall"``: remove the COCO suffixes, in SEEM's order."""
    for suffix in CLASS_NAME_SUFFIXES:
        name = name.replace(suffix, "")
    return name


def prompted_texts(name: str) -> list[str]:
    """The 81 sentences for one class name, e.g. ``"a photo of a dog."``."""
    cleaned = clean_class_name(name)
    return [template.format(cleaned) for template in PROMPT_TEMPLATES]
