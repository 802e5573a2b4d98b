"""Pixel decoder factory: MODEL.ENCODER.NAME transformer_encoder_fpn | transformer_encoder_deform.

A pixel decoder turns backbone features into `mask_features` (stride 4) and three multi-scale
maps (strides 32, 16, 8) for the SEEM decoder; its state_dict keys are the checkpoint keys under
`sem_seg_head.pixel_decoder.`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ..errors import CheckpointError
from .pixel_decoder_deform import build_deform_pixel_decoder
from .pixel_decoder_fpn import build_fpn_pixel_decoder


def build_pixel_decoder(cfg: Mapping[str, Any], backbone: nn.Module) -> nn.Module:
    """Build the pixel decoder named by cfg["MODEL"]["ENCODER"]["NAME"] for `backbone`'s outputs.

    `backbone` provides `out_channels` and `out_strides` (dicts keyed by "res2".."res5").
    Works under `with torch.device("meta"):`. Raises CheckpointError for an unknown name or a
    config that is missing keys.
    """
    try:
        name = str(cfg["MODEL"]["ENCODER"]["NAME"])
        channels, strides = backbone.out_channels, backbone.out_strides
        if name == "transformer_encoder_fpn":
            return build_fpn_pixel_decoder(cfg, channels, strides)
        if name == "transformer_encoder_deform":
            return build_deform_pixel_decoder(cfg, channels, strides)
    except KeyError as exc:
        raise CheckpointError(f"The model config is missing the key {exc.args[0]!r} the pixel decoder needs.") from exc
    raise CheckpointError(
        f"Unsupported MODEL.ENCODER.NAME {name!r}; this build supports transformer_encoder_fpn "
        "and transformer_encoder_deform."
    )
