"""Key/shape/dtype manifests of the SEEM a config builds, computed without allocating weights.

The layout is the ``state_dict`` field of the shared manifests (``../shared/seem/manifests``):
``{key: [[dim, ...], "float32"]}`` in state-dict order. The model is built under
``torch.device("meta")``, so even Focal-L costs no memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import torch
from torch import nn

from seem_annotator.model.config import config_name, known_models, load_config


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``"float32"``."""
    return str(dtype).removeprefix("torch.")


def state_dict_manifest(state: Mapping[str, torch.Tensor]) -> dict[str, list]:
    """``{key: [shape list, dtype name]}`` of a state dict (or any key -> tensor mapping)."""
    return {k: [list(v.shape), dtype_name(v.dtype)] for k, v in state.items()}


def build_meta_model(cfg: dict[str, Any]) -> nn.Module:
    """The full SEEM of ``cfg`` on the meta device (shapes only)."""
    from seem_annotator.model.seem import build_seem

    with torch.device("meta"):
        return build_seem(cfg)


def model_manifest(cfg: dict[str, Any]) -> dict[str, list]:
    """``{key: [shape, dtype]}`` of the SEEM built from ``cfg``, as in the shared manifests'
    ``state_dict`` field."""
    return state_dict_manifest(build_meta_model(cfg).state_dict())


def full_manifest(cfg: dict[str, Any], source: str = "") -> dict[str, Any]:
    """The manifest plus summary fields of the shared manifests (key count, parameter counts per
    submodule, persistent and non-persistent buffers)."""
    model = build_meta_model(cfg)
    state = model.state_dict()
    params = dict(model.named_parameters())
    persistent = {name for name, _ in model.named_buffers() if name in state}
    by_submodule: dict[str, int] = {}
    for name, p in params.items():
        prefix = ".".join(name.split(".")[:2]) if name.startswith("sem_seg_head.") else name.split(".")[0]
        by_submodule[prefix] = by_submodule.get(prefix, 0) + p.numel()
    return {
        "config": source or config_name(cfg),
        "state_dict": state_dict_manifest(state),
        "num_state_dict_keys": len(state),
        "total_parameters": sum(p.numel() for p in params.values()),
        "total_state_dict_numel": sum(t.numel() for t in state.values()),
        "parameters_by_submodule": by_submodule,
        "persistent_buffers": {n: [list(b.shape), dtype_name(b.dtype)] for n, b in model.named_buffers()
                               if n in persistent},
        "nonpersistent_buffers": {n: [list(b.shape), dtype_name(b.dtype)] for n, b in model.named_buffers()
                                  if n not in persistent},
    }


@cache
def known_signature(name: str) -> dict[str, tuple[int, ...]]:
    """{key: shape} of a known model (without the constant buffers), cached per process."""
    from seem_annotator.model.checkpoint import KNOWN_BUFFERS

    info = known_models()[name]
    manifest = model_manifest(load_config(info.config_path))
    return {k: tuple(shape) for k, (shape, _) in manifest.items() if k not in KNOWN_BUFFERS}
