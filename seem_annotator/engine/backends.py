"""Choosing a backend: "classical" (no weights) or a SEEM model by name, on a chosen device.

Names: "classical", or a SEEM model such as "focalt_v1" / "seem:focalt_v1" (a released model whose
checkpoint is in the cache), or a checkpoint path whose file name names its model. Plugins add more
with `register_backend`. `default_backend_name()` is what the app starts with: the first SEEM model
whose checkpoint is in the cache, else "classical".
"""

from __future__ import annotations

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
    """Known (released) SEEM model names, in the model package's order."""
    from seem_annotator.model.config import known_models

    return list(known_models())


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
    # "classical-textbook" was the rebuilt backend's name while it shipped next to the old one; it
    # is still accepted (not listed) so scripts and benchmark commands written then keep working.
    if name in ("classical", "classical-textbook"):
        from seem_annotator.engine.classical_backend import ClassicalBackend

        return ClassicalBackend()
    model = name.split(":", 1)[1] if name.startswith("seem:") else name
    if not model:
        raise UserError(f"unknown backend {name!r}: use 'classical' or one of {', '.join(backend_names()[1:])}")
    from seem_annotator.engine.predictor import SeemPredictor

    # Unknown names and missing checkpoints raise CheckpointError saying how to get the model.
    return SeemPredictor.from_name(model, device=resolve_device(device))


def default_backend_name() -> str:
    """The first known SEEM model whose checkpoint is already downloaded, else "classical"."""
    try:
        from seem_annotator.model.hub import list_models

        for row in list_models():
            if row.cached:
                return f"seem:{row.info.name}"
    except Exception:  # an unreadable cache must not stop the app from starting
        return "classical"
    return "classical"
