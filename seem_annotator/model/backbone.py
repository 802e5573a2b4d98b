"""Backbone factory: MODEL.BACKBONE.NAME focal_dw | focal | vit -> an image feature extractor.

Every backbone maps a normalised, padded image (B, 3, H, W) to {"res2", "res3", "res4", "res5"}
(strides 4, 8, 16, 32) and exposes `out_channels`, `out_strides` (dicts keyed by those names) and
`size_divisibility`. Its state_dict keys are the checkpoint keys under `backbone.`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from .focalnet import FocalNet
from .simple_fpn import SimpleFPN
from .vit import ImageEncoderViT

FEATURE_NAMES = ("res2", "res3", "res4", "res5")

# SAM ViT presets selected by MODEL.BACKBONE.VIT.SIZE (values of the official D2ViT).
VIT_PRESETS: dict[str, dict[str, Any]] = {
    "base": {"EMBED_DIM": 768, "DEPTH": 12, "NUM_HEADS": 12, "GLOBAL_ATTN_INDEXES": [2, 5, 8, 11]},
    "large": {"EMBED_DIM": 1024, "DEPTH": 24, "NUM_HEADS": 16, "GLOBAL_ATTN_INDEXES": [5, 11, 17, 23]},
    "huge": {"EMBED_DIM": 1280, "DEPTH": 32, "NUM_HEADS": 16, "GLOBAL_ATTN_INDEXES": [7, 15, 23, 31]},
}
# Values every preset shares; explicit MODEL.BACKBONE.VIT.* keys override them and the preset.
VIT_COMMON: dict[str, Any] = {
    "IMG_SIZE": 1024,
    "PATCH_SIZE": 16,
    "IN_CHANS": 3,
    "MLP_RATIO": 4.0,
    "QKV_BIAS": True,
    "USE_ABS_POS": True,
    "USE_REL_POS": True,
    "WINDOW_SIZE": 14,
    "NORM_EPS": 1e-6,
    "FPN_OUT_DIMS": [128, 256, 512, 1024],
}


def _section(cfg: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    node: Any = cfg
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            raise CheckpointError(f"The model config has no {'.'.join(path)} section.")
        node = node[key]
    return node


def _get(section: Mapping[str, Any], key: str, where: str, default: Any = ...) -> Any:
    if key in section:
        return section[key]
    if default is ...:
        raise CheckpointError(f"The model config is missing {where}.{key}.")
    return default


class SamViTBackbone(ImageEncoderViT):
    """SAM ViT trunk + SimpleFPN neck (`neck`), as SEEM's `vit` backbone.

    `size_divisibility` is 32 as in the reference, but the trunk only accepts exactly
    `img_size` x `img_size` inputs (fixed absolute position grid): SEEM's SAM configs pad every
    image to MODEL.DECODER.SIZE_DIVISIBILITY = 1024.
    """

    size_divisibility = 32

    def __init__(self, fpn_in_dim: int, fpn_out_dims: Sequence[int], **vit_kwargs: Any) -> None:
        super().__init__(**vit_kwargs)
        self.neck = SimpleFPN(fpn_in_dim, fpn_out_dims)
        self.out_channels = dict(zip(FEATURE_NAMES, (int(c) for c in fpn_out_dims), strict=True))
        self.out_strides = dict(zip(FEATURE_NAMES, (4, 8, 16, 32), strict=True))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: (B, 3, img_size, img_size) -> {"res2": (B, C2, S/4, S/4), ..., "res5": (B, C5, S/32, S/32)}."""
        return self.neck(self.forward_trunk(x))


def vit_hyperparameters(vit_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Resolve MODEL.BACKBONE.VIT into explicit numbers: SIZE preset, then explicit keys on top."""
    size = str(vit_cfg.get("SIZE", "base")).lower()
    if size not in VIT_PRESETS:
        raise CheckpointError(
            f"Unknown MODEL.BACKBONE.VIT.SIZE {size!r}; expected one of {', '.join(VIT_PRESETS)}."
        )
    hp: dict[str, Any] = {**VIT_COMMON, **VIT_PRESETS[size]}
    hp["FPN_IN_DIM"] = hp["EMBED_DIM"]
    explicit = {k: vit_cfg[k] for k in (*VIT_COMMON, *VIT_PRESETS[size], "FPN_IN_DIM") if k in vit_cfg}
    hp.update(explicit)
    if "EMBED_DIM" in explicit and "FPN_IN_DIM" not in explicit:
        hp["FPN_IN_DIM"] = hp["EMBED_DIM"]
    return hp


def _build_focal(cfg: Mapping[str, Any], variant: str) -> FocalNet:
    f = _section(cfg, "MODEL", "BACKBONE", "FOCAL")
    w = "MODEL.BACKBONE.FOCAL"
    return FocalNet(
        variant=variant,
        patch_size=int(_get(f, "PATCH_SIZE", w, 4)),
        embed_dim=int(_get(f, "EMBED_DIM", w)),
        depths=[int(d) for d in _get(f, "DEPTHS", w)],
        mlp_ratio=float(_get(f, "MLP_RATIO", w, 4.0)),
        focal_levels=[int(v) for v in _get(f, "FOCAL_LEVELS", w)],
        focal_windows=[int(v) for v in _get(f, "FOCAL_WINDOWS", w)],
        patch_norm=bool(_get(f, "PATCH_NORM", w, True)),
        use_conv_embed=bool(_get(f, "USE_CONV_EMBED", w, False)),
        use_postln=bool(_get(f, "USE_POSTLN", w, False)),
        use_postln_in_modulation=bool(_get(f, "USE_POSTLN_IN_MODULATION", w, False)),
        scaling_modulator=bool(_get(f, "SCALING_MODULATOR", w, False)),
        use_layerscale=bool(_get(f, "USE_LAYERSCALE", w, False)),
        out_indices=[int(i) for i in _get(f, "OUT_INDICES", w, [0, 1, 2, 3])],
        out_features=list(_get(f, "OUT_FEATURES", w, list(FEATURE_NAMES))),
    )


def _build_vit(cfg: Mapping[str, Any]) -> SamViTBackbone:
    hp = vit_hyperparameters(_section(cfg, "MODEL", "BACKBONE", "VIT"))
    return SamViTBackbone(
        fpn_in_dim=int(hp["FPN_IN_DIM"]),
        fpn_out_dims=[int(c) for c in hp["FPN_OUT_DIMS"]],
        img_size=int(hp["IMG_SIZE"]),
        patch_size=int(hp["PATCH_SIZE"]),
        in_chans=int(hp["IN_CHANS"]),
        embed_dim=int(hp["EMBED_DIM"]),
        depth=int(hp["DEPTH"]),
        num_heads=int(hp["NUM_HEADS"]),
        mlp_ratio=float(hp["MLP_RATIO"]),
        qkv_bias=bool(hp["QKV_BIAS"]),
        norm_eps=float(hp["NORM_EPS"]),
        use_abs_pos=bool(hp["USE_ABS_POS"]),
        use_rel_pos=bool(hp["USE_REL_POS"]),
        window_size=int(hp["WINDOW_SIZE"]),
        global_attn_indexes=[int(i) for i in hp["GLOBAL_ATTN_INDEXES"]],
    )


def build_backbone(cfg: Mapping[str, Any]) -> nn.Module:
    """Build the backbone named by cfg["MODEL"]["BACKBONE"]["NAME"] (focal_dw, focal or vit).

    Weights are freshly initialised (load a checkpoint afterwards); works under
    `with torch.device("meta"):`. Raises CheckpointError for an unknown name or missing keys.
    """
    name = str(_get(_section(cfg, "MODEL", "BACKBONE"), "NAME", "MODEL.BACKBONE"))
    if name in ("focal_dw", "focal"):
        return _build_focal(cfg, name)
    if name == "vit":
        return _build_vit(cfg)
    raise CheckpointError(
        f"Unsupported MODEL.BACKBONE.NAME {name!r}; this build supports focal_dw, focal and vit."
    )
