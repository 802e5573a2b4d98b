"""Annotation formats and the plugin interface.

- `base`: the Exporter / Importer interface every format implements (built-ins and plugins alike).
- `registry`: discovery of built-ins, `plugins/` folders and `seem_annotator.plugins` entry points.
- `coco`, `labelme` (+ `labelme_read`): the built-in formats.
- `atomic`: crash-safe file writes; `common`: shared helpers; `rle_crop`: fast RLE crop decoding.
"""
