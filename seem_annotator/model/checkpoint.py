"""Strict, safe loading of SEEM checkpoints.

A checkpoint is untrusted input: it is always read with ``torch.load(..., weights_only=True)`` (no
arbitrary Python objects). Every key and shape must match the model; the only tolerated gaps are the
two persistent buffers whose values are fixed constants in the official model:

- ``dilation_kernel`` [1, 1, 3, 3]: all ones (the 3x3 click dilation);
- ``criterion.empty_weight`` [num_classes + 1]: ones with the last (no-object) entry
  ``MODEL.DECODER.NO_OBJECT_WEIGHT`` (0.1); only models built with the training criterion (v0/v1)
  have it.

If the file lacks them they are filled with those constants; if it has them but the model has not
(e.g. a v0 file loaded into a model without criterion) they are dropped. Either way the report says
so. Any other difference raises `CheckpointError` listing the first missing, unexpected and
mismatched keys and the known config whose key/shape signature fits the file.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from seem_annotator.errors import CheckpointError

SHOW_KEYS = 5  # keys listed per category in error messages


def _dilation_kernel(shape: torch.Size, model: nn.Module) -> torch.Tensor:
    return torch.ones(shape)


def _empty_weight(shape: torch.Size, model: nn.Module) -> torch.Tensor:
    weight = torch.ones(shape)
    # The no-object weight comes from the config the model was built with (NO_OBJECT_WEIGHT, 0.1 in
    # every released config); a meta-device model cannot tell, so fall back to 0.1.
    own = getattr(getattr(model, "criterion", None), "empty_weight", None)
    weight[-1] = float(own[-1]) if isinstance(own, torch.Tensor) and not own.is_meta else 0.1
    return weight


# Persistent buffers with known constant values: state-dict key -> factory(shape, model).
KNOWN_BUFFERS: dict[str, Callable[[torch.Size, nn.Module], torch.Tensor]] = {
    "dilation_kernel": _dilation_kernel,
    "criterion.empty_weight": _empty_weight,
}

# Wrappers other tools put around a flat state dict.
_WRAPPER_KEYS = ("model", "state_dict", "module")


@dataclass
class LoadReport:
    """What `load_checkpoint` did: the file, tensors loaded and everything worth telling the user."""

    path: Path
    num_tensors: int
    notes: list[str] = field(default_factory=list)


def read_state_dict(path: str | Path, mmap: bool = False) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Read a checkpoint file safely and return (flat state dict, notes about unwrapping).

    ``mmap=True`` maps the tensors instead of reading them (for checks that only need shapes; files
    in the legacy non-zip format are then read normally).

    Raises CheckpointError for a missing, truncated, non-PyTorch or unsafe file, or one that does not
    hold a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint file {path} not found.")
    if path.stat().st_size == 0:
        raise CheckpointError(f"Checkpoint file {path} is empty (an interrupted download?); delete it and download again.")
    try:
        obj = _torch_load(path, mmap)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        # torch reports a garbled byte stream as an unsupported pickle opcode: that is corruption,
        # not a file smuggling Python objects.
        garbled = "unsupported operand" in str(exc).lower() or not _looks_like_torch_file(path)
        if garbled:
            raise CheckpointError(f"Checkpoint {path} is not a PyTorch checkpoint or is corrupt; "
                                  "delete it and download it again.") from exc
        if "weights only" in str(exc).lower() or "weights_only" in str(exc):
            raise CheckpointError(
                f"Checkpoint {path} contains Python objects besides tensors; refusing to load it "
                f"(only plain state dicts are accepted): {first[:200]}"
            ) from exc
        raise CheckpointError(f"Checkpoint {path} is not a PyTorch checkpoint or is corrupt ({first[:200]}).") from exc
    except (EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"Checkpoint {path} is truncated or corrupt; delete it and download it again.") from exc
    except RuntimeError as exc:
        msg = str(exc)
        if "zip" in msg.lower() or "archive" in msg.lower() or "storage" in msg.lower() or "file" in msg.lower():
            raise CheckpointError(
                # The action first: in the status bar a long line is cut at its end.
                f"Checkpoint {path} is truncated or not a PyTorch file; delete it and download it again "
                f"(torch: {msg.splitlines()[0][:160]})."
            ) from exc
        raise CheckpointError(f"Checkpoint {path} cannot be read: {msg.splitlines()[0][:200]}.") from exc
    except (OSError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise CheckpointError(f"Checkpoint {path} cannot be read: {type(exc).__name__}: {str(exc)[:200]}.") from exc
    return unwrap_state_dict(obj, path)


def _looks_like_torch_file(path: Path) -> bool:
    """A torch.save file is a zip archive or (legacy format) starts with a pickle protocol marker."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _torch_load(path: Path, mmap: bool) -> object:
    if mmap and zipfile.is_zipfile(path):
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return torch.load(path, map_location="cpu", weights_only=True)


def unwrap_state_dict(obj: object, path: str | Path = "checkpoint") -> tuple[dict[str, torch.Tensor], list[str]]:
    """Flat ``{key: tensor}`` from a loaded object, removing a ``{'model': ...}``-style wrapper and a
    ``module.`` (DataParallel) prefix. Returns (state dict, notes saying what was removed)."""
    notes: list[str] = []
    while isinstance(obj, Mapping) and not _is_tensor_mapping(obj):
        inner = next((k for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            raise CheckpointError(
                f"Checkpoint {path} is not a SEEM state dict (top-level keys: {_preview(list(obj))})."
            )
        notes.append(f"the file wraps its weights in a {{'{inner}': ...}} dict; using that entry")
        obj = obj[inner]
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"Checkpoint {path} does not hold a state dict of tensors.")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
        notes.append("the keys carry a 'module.' (DataParallel) prefix; stripped")
    return state, notes


def _is_tensor_mapping(obj: Mapping) -> bool:
    return bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _preview(items: list, n: int = SHOW_KEYS) -> str:
    shown = ", ".join(str(i) for i in items[:n])
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")


def signature(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """{key: shape} of a state dict, without the known constant buffers."""
    return {k: tuple(v.shape) for k, v in state.items() if k not in KNOWN_BUFFERS}


def diff_signatures(expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]]
                    ) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, mismatched) keys of ``found`` relative to ``expected``; mismatched entries
    read ``key: file [..] vs model [..]``."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    mismatched = [f"{k}: file {list(found[k])} vs model {list(expected[k])}"
                  for k in expected if k in found and tuple(found[k]) != tuple(expected[k])]
    return missing, unexpected, mismatched


def fitting_configs(state: Mapping[str, torch.Tensor]) -> tuple[list[str], str | None]:
    """Known models whose architecture has exactly this key/shape signature, and (when none does)
    a description of the closest one. Builds each known model on the meta device (no weights)."""
    from seem_annotator.model.config import known_models
    from seem_annotator.model.manifest import known_signature

    found = signature(state)
    exact: list[str] = []
    best: tuple[int, str] | None = None
    for name in known_models():
        try:
            expected = known_signature(name)
        except Exception:  # a model family this build cannot construct: skip it, keep going
            continue
        missing, unexpected, mismatched = diff_signatures(expected, found)
        if not (missing or unexpected or mismatched):
            exact.append(name)
            continue
        present = len(expected) - len(missing)
        # Only worth naming when most of the model is there (e.g. a fine-tuned head), not for a
        # shrunken or foreign architecture that happens to share a few key names.
        if present >= len(expected) // 2 and (best is None or present > best[0]):
            best = (present, f"{name}: {present} of its {len(expected)} keys present, "
                             f"{present - len(mismatched)} with the same shape")
    return exact, (None if exact or best is None else best[1])


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint",
                     config_label: str = "the model") -> tuple[dict[str, torch.Tensor], list[str]]:
    """Compare ``state`` with ``model``'s state dict strictly.

    Returns (the state dict to load, with the known buffers filled or dropped; notes). Raises
    CheckpointError on any other missing, unexpected or mis-shaped key.
    """
    own = model.state_dict()
    state = dict(state)
    notes: list[str] = []
    for key, factory in KNOWN_BUFFERS.items():
        if key in own and (key not in state or tuple(state[key].shape) != tuple(own[key].shape)):
            why = "missing from" if key not in state else f"of shape {list(state[key].shape)} in"
            state[key] = factory(own[key].shape, model).to(own[key].dtype)
            notes.append(f"buffer {key} {why} the file; using its constant value")
        elif key not in own and key in state:
            del state[key]
            notes.append(f"buffer {key} in the file is not used by this model; ignored")
    expected = {k: tuple(v.shape) for k, v in own.items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    missing, unexpected, mismatched = diff_signatures(expected, found)
    if missing or unexpected or mismatched:
        raise CheckpointError(_mismatch_message(state, source, config_label, missing, unexpected, mismatched))
    bad_dtype = [k for k, v in state.items() if not (v.is_floating_point() or k in KNOWN_BUFFERS)]
    if bad_dtype:
        raise CheckpointError(f"{source} stores non-float weights ({_preview(bad_dtype)}); it is not a SEEM checkpoint.")
    converted = sorted({str(v.dtype).removeprefix("torch.") for k, v in state.items() if v.dtype != own[k].dtype})
    if converted:
        notes.append(f"the file stores {', '.join(converted)} tensors; converted to the model's dtype")
    return state, notes


def _mismatch_message(state: Mapping[str, torch.Tensor], source: str, config_label: str,
                      missing: list[str], unexpected: list[str], mismatched: list[str]) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s) [{_preview(missing)}]")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s) [{_preview(unexpected)}]")
    if mismatched:
        parts.append(f"{len(mismatched)} key(s) with another shape [{_preview(mismatched)}]")
    exact, closest = fitting_configs(state)
    if exact:
        hint = f"the file fits config {' / '.join(exact)}: use --config {exact[0]}"
    elif closest:
        hint = f"no known config fits it exactly (closest {closest})"
    else:
        hint = "no known config fits it (a custom model needs its own config: pass --config)"
    return f"{source} does not match {config_label}: " + "; ".join(parts) + f"; {hint}."


def load_checkpoint(model: nn.Module, path: str | Path, config_label: str = "the model") -> LoadReport:
    """Load a SEEM checkpoint into ``model`` strictly (keys and shapes), never partially.

    Args:
        model: the built SEEM (any device; meta-device models get the file's tensors assigned).
        path: checkpoint file (flat state dict as released; wrappers are tolerated and reported).
        config_label: how error messages name the model's config (e.g. ``"config focalt_v1"``).

    Returns a `LoadReport` whose ``notes`` say what was unwrapped, filled or ignored.
    """
    path = Path(path)
    state, notes = read_state_dict(path, mmap=True)  # mapped: the file is not held twice in memory
    state, more = check_state_dict(model, state, source=f"Checkpoint {path.name}", config_label=config_label)
    notes += more
    on_meta = any(t.is_meta for t in model.state_dict().values())
    try:
        model.load_state_dict(state, strict=True, assign=on_meta)
    except RuntimeError as exc:  # check_state_dict makes this unreachable for key/shape problems
        raise CheckpointError(f"Checkpoint {path.name} could not be loaded: {str(exc).splitlines()[0][:300]}") from exc
    return LoadReport(path=path, num_tensors=len(state), notes=notes)


def load_seem(config: str | Path | dict, checkpoint: str | Path, device: str | torch.device = "cpu"
              ) -> tuple[nn.Module, LoadReport]:
    """Build the SEEM of ``config`` on ``device`` and load ``checkpoint`` into it strictly.

    ``config``: known model name, YAML path or option tree; ``checkpoint``: file path or known model
    name (its cached file, see `seem_annotator.model.hub.resolve_checkpoint`). Returns the model in
    eval mode and the load report.
    """
    from seem_annotator.model.config import config_name, load_config
    from seem_annotator.model.hub import resolve_checkpoint
    from seem_annotator.model.seem import build_seem

    cfg = config if isinstance(config, dict) else load_config(config)
    path = resolve_checkpoint(checkpoint)
    label = f"config {config if isinstance(config, (str, Path)) else config_name(cfg)}"
    with torch.device(device):
        model = build_seem(cfg)
    report = load_checkpoint(model, path, config_label=label)
    return model.eval(), report
