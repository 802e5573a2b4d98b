"""User-facing error types.

Every failure a user can cause is raised as a `UserError` subclass whose message is one clear
sentence a person can act on. The CLI prints it on one line (no traceback unless `--debug`); the GUI
shows it in a dialog or the status bar. Anything else escaping is a bug.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: bad input file, missing checkpoint, no device, ..."""


class ImageReadError(UserError):
    """An image file is truncated, empty, not an image, or too large to decode."""


class FormatError(UserError):
    """An annotation file (COCO, LabelMe, plugin format) is malformed or inconsistent."""


class StoreError(UserError):
    """The project store cannot be opened or written (locked, corrupt, newer schema, read-only)."""


class CheckpointError(UserError):
    """A SEEM checkpoint or config is missing, unreadable or does not match the model."""


class ModelUnavailableError(UserError):
    """A prompt needs a model that is not loaded (e.g. text prompt with the classical backend)."""


class DeviceError(UserError):
    """A compute device (CUDA, MPS) or an audio device is missing or failed."""


class PluginError(UserError):
    """A plugin failed to load or run; it is reported and skipped."""
