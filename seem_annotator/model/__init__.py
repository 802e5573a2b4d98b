"""SEEM in plain PyTorch: one concept per module.

- `config`: official YAML option trees (`load_config`, `cfg_get`) and the released models.
- `tokenizer`, `text_encoder`, `language`, `prompt_templates`: the text side (CLIP BPE, text
  transformer, class and grounding embeddings).
- `backbone`, `pixel_decoder`, `position_encoding`: the image side.
- `seem_decoder`, `sampler`, `postprocess`, `seem`: queries, prompts and outputs (`build_seem`).
- `checkpoint`, `manifest`, `hub`: strict loading of released checkpoints, key/shape manifests,
  download cache.

Submodules are imported on use; this package import stays cheap.
"""

from seem_annotator.model.config import cfg_get, known_models, load_config

__all__ = ["cfg_get", "known_models", "load_config"]
