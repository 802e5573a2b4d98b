"""SEEM option trees: load the official YAML layout, look up dotted keys, know the released models.

A config is a plain nested ``dict`` with exactly the key structure of the official SEEM yaml files
(``MODEL.BACKBONE.FOCAL.EMBED_DIM``, ``MODEL.DECODER.HIDDEN_DIM``, ``ATTENTION_ARCH...``), so a
shrunken config drives this package and the official code the same way. Unknown keys pass through
untouched (e.g. the ``MODEL.BACKBONE.VIT.*`` extension keys of the SAM-ViT fixture).

The six released checkpoints have their configs bundled under ``resources/configs`` and are named
in ``resources/configs/index.yaml`` (``focalt_v1`` -> ``focalt_unicl_lang_v1.yaml`` +
``seem_focalt_v1.pt``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from seem_annotator.errors import CheckpointError
from seem_annotator.paths import resource

_MISSING = object()

# Keys every SEEM model build reads, whatever its backbone (the official builders index these
# directly, so a config without them cannot describe a model).
REQUIRED_KEYS: tuple[str, ...] = (
    "MODEL.NAME",
    "MODEL.DIM_PROJ",
    "MODEL.TEXT.CONTEXT_LENGTH",
    "MODEL.TEXT.WIDTH",
    "MODEL.TEXT.HEADS",
    "MODEL.TEXT.LAYERS",
    "MODEL.BACKBONE.NAME",
    "MODEL.ENCODER.NAME",
    "MODEL.ENCODER.CONVS_DIM",
    "MODEL.ENCODER.MASK_DIM",
    "MODEL.ENCODER.IN_FEATURES",
    "MODEL.DECODER.NAME",
    "MODEL.DECODER.HIDDEN_DIM",
    "MODEL.DECODER.NUM_OBJECT_QUERIES",
    "MODEL.DECODER.NHEADS",
    "MODEL.DECODER.DIM_FEEDFORWARD",
    "MODEL.DECODER.DEC_LAYERS",
    "MODEL.DECODER.MAX_SPATIAL_LEN",
    "ATTENTION_ARCH.SPATIAL_MEMORIES",
)

# Extra keys by backbone family (MODEL.BACKBONE.NAME).
BACKBONE_REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "focal": ("MODEL.BACKBONE.FOCAL.EMBED_DIM", "MODEL.BACKBONE.FOCAL.DEPTHS",
              "MODEL.BACKBONE.FOCAL.FOCAL_LEVELS", "MODEL.BACKBONE.FOCAL.FOCAL_WINDOWS"),
    "focal_dw": ("MODEL.BACKBONE.FOCAL.EMBED_DIM", "MODEL.BACKBONE.FOCAL.DEPTHS",
                 "MODEL.BACKBONE.FOCAL.FOCAL_LEVELS", "MODEL.BACKBONE.FOCAL.FOCAL_WINDOWS"),
    "vit": ("MODEL.BACKBONE.VIT.SIZE",),
}


@dataclass(frozen=True)
class ModelInfo:
    """One released SEEM model.

    name: short name used on the command line (``focalt_v1``).
    config_file: bundled config under ``resources/configs``.
    checkpoint: file name in the Hugging Face repository ``repo_id``.
    """

    name: str
    config_file: str
    checkpoint: str
    repo_id: str
    backbone: str
    version: str
    description: str

    @property
    def config_path(self) -> Path:
        return resource("configs", self.config_file)


@lru_cache(maxsize=1)
def known_models() -> dict[str, ModelInfo]:
    """The released models, in the order of ``resources/configs/index.yaml``."""
    index_path = resource("configs", "index.yaml")
    with open(index_path, encoding="utf-8") as f:
        index = yaml.safe_load(f)
    repo_id = index["repo_id"]
    return {
        name: ModelInfo(name=name, config_file=entry["config"], checkpoint=entry["checkpoint"],
                        repo_id=entry.get("repo_id", repo_id), backbone=entry["backbone"],
                        version=entry["version"], description=entry.get("description", ""))
        for name, entry in index["models"].items()
    }


def resolve_model_name(name: str) -> ModelInfo | None:
    """The known model a user's name refers to: ``focalt_v1``, ``seem_focalt_v1``,
    ``seem_focalt_v1.pt``, ``focalt_unicl_lang_v1`` or ``focalt_unicl_lang_v1.yaml``; else None."""
    models = known_models()
    key = name.strip()
    for suffix in (".pt", ".yaml", ".yml"):
        if key.endswith(suffix):
            key = key[: -len(suffix)]
    if key.startswith("seem_"):
        key = key[len("seem_"):]
    if key in models:
        return models[key]
    for info in models.values():
        if Path(info.config_file).stem == key or Path(info.checkpoint).stem == name.strip():
            return info
    return None


def load_config(name_or_path: str | Path) -> dict[str, Any]:
    """Load a SEEM option tree.

    ``name_or_path`` is a bundled model name (``focalt_v1``; see `known_models`), a bundled config
    file stem (``focalt_unicl_lang_v1``) or the path of a YAML file in the official layout (a
    fixture's ``config.yaml``, a user's config). Returns a fresh nested dict (callers may mutate it).

    Raises CheckpointError if the file is missing, is not valid YAML, is not a mapping, or lacks a
    key the model build needs.
    """
    path = Path(name_or_path)
    if not path.is_file():
        info = resolve_model_name(str(name_or_path))
        if info is None:
            known = ", ".join(known_models())
            raise CheckpointError(
                f"SEEM config '{name_or_path}' not found: give a YAML file path or one of the known models ({known})."
            )
        path = info.config_path
    cfg = _read_yaml(path)
    validate_config(cfg, source=str(path))
    return cfg


@lru_cache(maxsize=32)
def _read_yaml_cached(path: str, mtime_ns: int) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"Cannot read SEEM config {path}: {exc}.") from exc
    except yaml.YAMLError as exc:
        raise CheckpointError(f"SEEM config {path} is not valid YAML: {exc}".rstrip(".") + ".") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"SEEM config {path} must be a YAML mapping (MODEL: ..., ATTENTION_ARCH: ...).")
    return data


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise CheckpointError(f"Cannot read SEEM config {path}: {exc.strerror or exc}.") from exc
    # Cached parse, fresh copy: configs are small but parsed often (manifests, tests).
    return copy.deepcopy(_read_yaml_cached(str(path), mtime))


def validate_config(cfg: dict[str, Any], source: str = "config") -> None:
    """Raise CheckpointError naming the first missing required keys of ``cfg``."""
    absent = object()
    missing = [k for k in REQUIRED_KEYS if cfg_get(cfg, k, absent) is absent]
    backbone = cfg_get(cfg, "MODEL.BACKBONE.NAME", None)
    if isinstance(backbone, str):
        missing += [k for k in BACKBONE_REQUIRED_KEYS.get(backbone, ()) if cfg_get(cfg, k, absent) is absent]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise CheckpointError(f"SEEM config {source} lacks required key(s) {shown}.")


def cfg_get(cfg: dict[str, Any], dotted: str, default: Any = _MISSING) -> Any:
    """``cfg_get(cfg, "MODEL.DECODER.HIDDEN_DIM", 512)``: the value at a dotted key path.

    Without ``default`` a missing key raises CheckpointError (the config cannot drive the model).
    """
    node: Any = cfg
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            if default is _MISSING:
                raise CheckpointError(f"SEEM config lacks required key {dotted}.")
            return default
    return node


def cfg_set(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    """Set a dotted key, creating intermediate dicts (the official ``--config_overrides`` rule)."""
    parts = dotted.split(".")
    node = cfg
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def config_name(cfg: dict[str, Any]) -> str:
    """A short human name for a config: the known model whose bundled config has the same
    architecture keys, else ``custom (<backbone>, <decoder>)``."""
    sig = _arch_signature(cfg)
    for info in known_models().values():
        if _arch_signature(load_config(info.config_path)) == sig:
            return info.name
    return f"custom ({cfg_get(cfg, 'MODEL.BACKBONE.NAME', '?')}, {cfg_get(cfg, 'MODEL.DECODER.NAME', '?')})"


def _arch_signature(cfg: dict[str, Any]) -> tuple:
    model = cfg.get("MODEL", {})
    return (
        repr(model.get("NAME")), repr(model.get("DIM_PROJ")), repr(model.get("TEXT")),
        repr(model.get("BACKBONE", {}).get("NAME")), repr(model.get("BACKBONE", {}).get("FOCAL")),
        repr(model.get("BACKBONE", {}).get("VIT")), repr(model.get("ENCODER")),
        repr({k: v for k, v in model.get("DECODER", {}).items() if k != "TEST"}),
        repr(cfg.get("ATTENTION_ARCH")),
    )
