"""Backend creation and device choice."""

from __future__ import annotations

import pytest

from seem_annotator.engine import backends
from seem_annotator.engine.classical_backend import ClassicalBackend
from seem_annotator.errors import CheckpointError, DeviceError, UserError


def test_classical_and_names():
    assert isinstance(backends.create_backend("classical", "cpu"), ClassicalBackend)
    names = backends.backend_names()
    assert names[0] == "classical" and "seem:focalt_v1" in names
    # the rebuilt backend's name from before it became "classical" still works (scripts), unlisted
    old_name = backends.create_backend("classical-textbook", "cpu")
    assert isinstance(old_name, ClassicalBackend) and old_name.name == "classical"
    assert "classical-textbook" not in names


def test_devices():
    assert backends.available_devices()[-1] == "cpu"
    assert backends.resolve_device("cpu") == "cpu"
    assert backends.resolve_device("auto") == backends.available_devices()[0]
    if "cuda:0" not in backends.available_devices():
        with pytest.raises(DeviceError, match="not available"):
            backends.resolve_device("cuda")


def test_missing_checkpoint_and_unknown_model_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("SEEM_ANNOTATOR_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError, match="models download focalt_v1"):
        backends.create_backend("seem:focalt_v1", "cpu")
    with pytest.raises(CheckpointError, match="nonsense_model"):
        backends.create_backend("nonsense_model", "cpu")
    with pytest.raises(UserError):
        backends.create_backend("seem:", "cpu")
    assert backends.default_backend_name() == "classical"


def test_plugin_backends_register():
    made = []

    def factory(device: str):
        made.append(device)
        return ClassicalBackend()

    backends.register_backend("my-plugin", factory)
    try:
        assert isinstance(backends.create_backend("my-plugin", "cpu"), ClassicalBackend)
        assert made == ["cpu"] and "my-plugin" in backends.backend_names()
    finally:
        backends._REGISTRY.pop("my-plugin", None)
