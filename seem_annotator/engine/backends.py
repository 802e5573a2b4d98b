"""Choosing a backend: "classical" (no weights) or a SEEM model by name, on a chosen device.

Names: "classical", or a SEEM model such as "focalt_v1" / "seem:focalt_v1" (the known model names
and their checkpoints come from `seem_annotator.model`). Plugins add more with `register_backend`.
`default_backend_name()` is what the app starts with: the first SEEM model whose checkpoint is in
the cache, else "classical".
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from seem_annotator.engine.types import SegmentationBackend
from seem_annotator.errors import DeviceError, UserError

BackendFactory = Callable[[str], SegmentationBackend]  # device -> backend
_REGISTRY: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make `create_backend(name, device)` call `factory(device)` (plugins use this)."""
    _REGISTRY[name] = factory


def available_devices() -> list[str]:
    """Devices present on this machine, best first ("cuda:0", ..., "mps", "cpu")."""
    devices: list[str] = []
    try:
        import torch
    except ImportError:
        return ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    devices.append("cpu")
    return devices


def resolve_device(device: str | None) -> str:
    """"auto"/None -> the best present device; "cuda" -> "cuda:0"; checks the device exists."""
    present = available_devices()
    if device in (None, "", "auto"):
        return present[0]
    if device == "cuda":
        device = "cuda:0"
    if device not in present:
        raise DeviceError(f"device {device!r} is not available here (available: {', '.join(present)})")
    return device


def seem_model_names() -> list[str]:
    """Known SEEM model names (from the model package), empty when it is not importable."""
    try:
        checkpoint = importlib.import_module("seem_annotator.model.checkpoint")
    except ImportError:
        return []
    names = getattr(checkpoint, "KNOWN_MODELS", None) or getattr(checkpoint, "MODELS", None) or {}
    return sorted(names)


def backend_names() -> list[str]:
    """Every name `create_backend` accepts."""
    return ["classical"] + [f"seem:{n}" for n in seem_model_names()] + sorted(_REGISTRY)


def create_backend(name: str, device: str | None = "auto") -> SegmentationBackend:
    """Build a backend by name on a device ("cpu", "cuda", "cuda:1", "mps", "auto").

    Raises CheckpointError when a SEEM model's checkpoint is missing, DeviceError for a missing
    device, UserError for an unknown name.
    """
    if name in _REGISTRY:
        return _REGISTRY[name](resolve_device(device))
    if name == "classical":
        from seem_annotator.engine.classical import ClassicalBackend

        return ClassicalBackend()
    model = name.split(":", 1)[1] if name.startswith("seem:") else name
    try:
        predictor = importlib.import_module("seem_annotator.engine.predictor")
    except ImportError as exc:
        raise UserError(f"unknown backend {name!r}: the SEEM model package is not available ({exc})") from exc
    return predictor.SeemPredictor.from_name(model, device=resolve_device(device))


def default_backend_name() -> str:
    """The first SEEM model whose checkpoint is already downloaded, else "classical"."""
    try:
        checkpoint = importlib.import_module("seem_annotator.model.checkpoint")
        cached = getattr(checkpoint, "cached_checkpoint", None)
    except ImportError:
        return "classical"
    if cached is None:
        return "classical"
    for model in ("focalt_v1", "focall_v1", "samvitb_v1", "samvitl_v1", "focalt_v0", "focall_v0"):
        try:
            if cached(model):
                return f"seem:{model}"
        except Exception:  # a broken cache must not stop the app from starting
            continue
    return "classical"
