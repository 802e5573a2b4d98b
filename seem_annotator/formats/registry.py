"""Plugin discovery: built-in formats, `plugins/` folders, installed entry points.

Sources, in order (a later registration of the same name replaces an earlier one, with a warning):
1. built-ins: COCO and LabelMe (registered through the same interface as any plugin);
2. the repository's `plugins/` folder (beside the package in a checkout, or the installed copy under
   `<prefix>/share/seem-annotator/plugins`);
3. the user plugins folder: `$SEEM_ANNOTATOR_PLUGINS` (os.pathsep-separated) or
   `$XDG_CONFIG_HOME/seem-annotator/plugins` (default `~/.config/seem-annotator/plugins`);
4. entry points of installed packages in the group `seem_annotator.plugins`.

A plugin that fails to import, has no `register`, raises while registering or registers something
that is not an exporter/importer is recorded in `registry.errors` and skipped; it never stops the
others or the program.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from seem_annotator.errors import PluginError
from seem_annotator.formats.base import BackendEntry, Exporter, Importer

ENTRY_POINT_GROUP = "seem_annotator.plugins"
_PACKAGE_DIR = Path(__file__).resolve().parents[1]


@dataclass
class PluginProblem:
    """A plugin that was skipped: where it came from and why."""

    source: str
    message: str

    def __str__(self) -> str:
        return f"plugin {self.source} skipped: {self.message}"


class PluginRegistry:
    """Exporters, importers and backends by name, plus the problems met while loading plugins."""

    def __init__(self) -> None:
        self.exporters: dict[str, Exporter] = {}
        self.importers: dict[str, Importer] = {}
        self.backends: dict[str, BackendEntry] = {}
        self.errors: list[PluginProblem] = []
        self.warnings: list[str] = []
        self.sources: dict[str, str] = {}  # "exporter:yolo" -> where it came from
        self._current_source = "built-in"

    # -- registration API used by plugins -------------------------------------------------------
    def add_exporter(self, exporter: Exporter | type[Exporter]) -> None:
        exporter = _instantiate(exporter, Exporter)
        self._add("exporter", self.exporters, exporter)

    def add_importer(self, importer: Importer | type[Importer]) -> None:
        importer = _instantiate(importer, Importer)
        self._add("importer", self.importers, importer)

    def add_backend(self, name: str, factory: Callable[..., Any], description: str = "") -> None:
        if not name or not callable(factory):
            raise PluginError("a backend needs a name and a callable factory")
        self._note_replacement("backend", name)
        self.backends[name] = BackendEntry(name, factory, description, self._current_source)
        self.sources[f"backend:{name}"] = self._current_source

    def _add(self, kind: str, table: dict[str, Any], item: Exporter | Importer) -> None:
        name = getattr(item, "name", "")
        if not isinstance(name, str) or not name or not name.replace("-", "").replace("_", "").isalnum():
            raise PluginError(f"{kind} {type(item).__name__} has no valid `name`")
        self._note_replacement(kind, name)
        table[name] = item
        self.sources[f"{kind}:{name}"] = self._current_source

    def _note_replacement(self, kind: str, name: str) -> None:
        key = f"{kind}:{name}"
        if key in self.sources:
            self.warnings.append(f"{kind} '{name}' from {self._current_source} replaces the one from "
                                 f"{self.sources[key]}")

    # -- loading ----------------------------------------------------------------------------------
    def load(self, source: str, register: Callable[[PluginRegistry], Any]) -> bool:
        """Run one plugin's `register` transactionally: on any error nothing it added is kept."""
        snapshot = (dict(self.exporters), dict(self.importers), dict(self.backends), dict(self.sources),
                    list(self.warnings))
        self._current_source = source
        try:
            register(self)
            return True
        except Exception as exc:  # a broken plugin must never be fatal
            self.exporters, self.importers, self.backends, self.sources, self.warnings = snapshot
            self.errors.append(PluginProblem(source, _describe(exc)))
            return False
        finally:
            self._current_source = "built-in"

    def load_module_object(self, source: str, obj: Any) -> bool:
        """Register an entry point's object: a module with `register`, a `register` callable, or an
        Exporter/Importer class or instance."""
        if isinstance(obj, Exporter) or isinstance(obj, type) and issubclass(obj, Exporter):
            return self.load(source, lambda reg: reg.add_exporter(obj))
        if isinstance(obj, Importer) or isinstance(obj, type) and issubclass(obj, Importer):
            return self.load(source, lambda reg: reg.add_importer(obj))
        register = getattr(obj, "register", None)  # a module (or object) with register()
        if register is None and callable(obj) and not isinstance(obj, type):
            register = obj  # the entry point names the register function itself
        if not callable(register):
            self.errors.append(PluginProblem(source, "it has no register(registry) function"))
            return False
        return self.load(source, register)

    def load_file(self, path: Path) -> bool:
        """Import a plugin file under a private module name and register it."""
        source = str(path)
        module_name = f"seem_annotator_plugin_{abs(hash(str(path.resolve())))}_{path.stem}"
        try:
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise ImportError("not a loadable Python file")
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
        except BaseException as exc:  # SyntaxError, ImportError, even SystemExit from a bad plugin
            sys.modules.pop(module_name, None)
            if isinstance(exc, KeyboardInterrupt):
                raise
            self.errors.append(PluginProblem(source, _describe(exc)))
            return False
        register = getattr(module, "register", None)
        if not callable(register):
            self.errors.append(PluginProblem(source, "it has no register(registry) function"))
            return False
        return self.load(source, register)

    def load_folder(self, folder: Path) -> None:
        """Load every `*.py` in `folder` (not starting with `_`), in name order."""
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.py")):
            if not path.name.startswith("_"):
                self.load_file(path)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        try:
            entry_points = list(metadata.entry_points(group=group))
        except Exception as exc:  # a broken installed distribution's metadata
            self.errors.append(PluginProblem(f"entry points '{group}'", _describe(exc)))
            return
        for ep in entry_points:
            source = f"entry point {ep.name} ({ep.value})"
            try:
                obj = ep.load()
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                self.errors.append(PluginProblem(source, _describe(exc)))
                continue
            self.load_module_object(source, obj)

    # -- lookup -----------------------------------------------------------------------------------
    def exporter(self, name: str) -> Exporter:
        try:
            return self.exporters[name]
        except KeyError:
            raise PluginError(f"unknown export format '{name}'; available: {', '.join(sorted(self.exporters))}"
                              ) from None

    def importer(self, name: str) -> Importer:
        try:
            return self.importers[name]
        except KeyError:
            raise PluginError(f"unknown import format '{name}'; available: {', '.join(sorted(self.importers))}"
                              ) from None

    def problems(self) -> list[str]:
        """One line per skipped plugin and per replaced registration."""
        return [str(p) for p in self.errors] + list(self.warnings)


def _instantiate(obj: Any, base: type) -> Any:
    if isinstance(obj, type):
        if not issubclass(obj, base):
            raise PluginError(f"{obj.__name__} is not a {base.__name__}")
        return obj()
    if not isinstance(obj, base):
        raise PluginError(f"{type(obj).__name__} is not a {base.__name__}")
    return obj


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def repo_plugins_dirs() -> list[Path]:
    """The shipped `plugins/` folder(s): source checkout first, then the installed copy."""
    return [p for p in (_PACKAGE_DIR.parent / "plugins",
                        Path(sys.prefix) / "share" / "seem-annotator" / "plugins") if p.is_dir()][:1]


def user_plugins_dirs() -> list[Path]:
    env = os.environ.get("SEEM_ANNOTATOR_PLUGINS")
    if env is not None:
        return [Path(p) for p in env.split(os.pathsep) if p]
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return [Path(base) / "seem-annotator" / "plugins"]


def register_builtins(registry: PluginRegistry) -> None:
    """COCO and LabelMe, through the same interface as plugins."""
    from seem_annotator.formats import coco, labelme

    registry.load("built-in coco", coco.register)
    registry.load("built-in labelme", labelme.register)


def discover(extra_dirs: Iterable[Path] = (), *, include_repo: bool = True, include_user: bool = True,
             include_entry_points: bool = True) -> PluginRegistry:
    """A registry with the built-ins and every plugin found (broken ones recorded in `errors`)."""
    registry = PluginRegistry()
    register_builtins(registry)
    folders: list[Path] = []
    if include_repo:
        folders += repo_plugins_dirs()
    if include_user:
        folders += user_plugins_dirs()
    folders += list(extra_dirs)
    seen: set[Path] = set()
    for folder in folders:
        key = folder.resolve()
        if key not in seen:
            seen.add(key)
            registry.load_folder(folder)
    if include_entry_points:
        registry.load_entry_points()
    return registry


_DEFAULT: PluginRegistry | None = None


def default_registry(refresh: bool = False) -> PluginRegistry:
    """The process-wide registry (discovered once)."""
    global _DEFAULT
    if _DEFAULT is None or refresh:
        _DEFAULT = discover()
    return _DEFAULT
