"""Project-local plugins: ``plugins: [./my_metrics.py]`` in a pipeline file, or ``ftp --plugin FILE``.

The cheapest way to add a metric or a data check: a module next to the pipeline file, no package, no
entry point. Each is imported and registered with the plugin manager under its file stem, exactly as an
entry-point plugin is, *before* the file's other sections are validated (``load_pipeline`` calls
``with_local_plugins`` first, through the catalog ``Hooks.catalog`` made), so its ``ftp_backends``,
``ftp_config_sections``, ``ftp_metrics`` and ``ftp_data_checks`` count when the file is checked. Every mistake is one line naming
the file and key (exit 2); ``--debug`` shows an import failure's traceback.
"""

from __future__ import annotations

import difflib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from ftp.config.catalog import Catalog, LocalEntry
from ftp.config.check import KeyPath, Located
from ftp.errors import ConfigError, UserError

KEY = "plugins"
MODULE_PREFIX = "ftp_local_plugins"  # their sys.modules names, apart from any installed module


def with_local_plugins(catalog: Catalog, path: Path, entries: Any, lines: dict[KeyPath, int],
                       overrides: Sequence[str]) -> Catalog:
    """The catalog once the file's ``plugins:`` are registered (``load_pipeline`` asks before anything else)."""
    for assignment in overrides:
        if assignment.partition("=")[0].strip().split(".")[0] == KEY:
            raise UserError(f"--set {KEY}: local plugins are loaded before overrides apply; "
                            f"list them in the pipeline file's {KEY}: key")
    if entries is None:
        return catalog
    where = Located(str(path), lines)
    if not isinstance(entries, list) or not all(isinstance(e, str) and e.strip() for e in entries):
        where.fail((KEY,), "must be a list of Python files next to the pipeline file", "e.g. plugins: [./my_metrics.py]")
    if catalog.local_plugins is None:
        where.fail((KEY,), "this command cannot load local plugins", "run it through the ftp command line")
    at = [{"file": str(path), "line": where.line((KEY, i)), "key": f"{KEY}.{i}"} for i in range(len(entries))]
    return catalog.local_plugins([(entry, path.parent, spot) for entry, spot in zip(entries, at)])


def register_all(pm: pluggy.PluginManager, entries: Sequence[LocalEntry]) -> list[str]:
    """Register each module; their plugin names."""
    return [register(pm, entry, base, at) for entry, base, at in entries]


def register_from_option(pm: pluggy.PluginManager, entries: Sequence[str]) -> list[str]:
    """``ftp --plugin FILE``: the same, relative to the working directory (for commands without a pipeline file)."""
    return register_all(pm, [(entry, Path.cwd(), {"file": "--plugin"}) for entry in entries])


def register(pm: pluggy.PluginManager, entry: str, base: Path, at: dict[str, Any]) -> str:
    """Import ``entry`` (a .py file relative to ``base``) and register it under its stem; ``at`` locates errors."""
    file = _existing(entry, base, at)
    name = file.stem
    known = pm.get_plugin(name)
    if known is not None:
        if getattr(known, "__file__", None) == str(file):
            return name  # this process read the file already (a resumed run, a second command in a test)
        raise ConfigError(f"{entry}: a plugin named {name!r} is already registered", **at,
                          hint="rename the file")
    module = _import(file, entry, at)
    _register(pm, module, name, entry, at)
    return name


def _existing(entry: str, base: Path, at: dict[str, Any]) -> Path:
    file = (base / entry).resolve()
    if file.suffix != ".py":
        raise ConfigError(f"{entry}: not a Python file", **at, hint="name a .py module, e.g. ./my_metrics.py")
    if not file.is_file():
        raise ConfigError(f"{entry}: file not found", **at, hint=_near(entry, file) or f"paths are relative to {base}")
    return file


def _near(entry: str, file: Path) -> str | None:
    """'did you mean' with a module of a close name in the same folder, written as the user wrote the path."""
    stems = [p.stem for p in file.parent.glob("*.py")] if file.parent.is_dir() else []
    close = difflib.get_close_matches(file.stem, stems, n=1, cutoff=0.6)
    if not close:
        return None
    head = entry[: -len(file.name)] if entry.endswith(file.name) else ""
    return f"did you mean {head + close[0] + '.py'!r}?"


def _import(file: Path, entry: str, at: dict[str, Any]) -> ModuleType:
    """Run the module under a name of its own; any exception is the user's one-line error (--debug: traceback)."""
    modname = f"{MODULE_PREFIX}.{file.stem}"
    spec = importlib.util.spec_from_file_location(modname, file)
    assert spec is not None and spec.loader is not None  # a .py path always has a source loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module  # dataclasses and pickling look their module up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[modname]
        first = (str(exc).strip().splitlines() or [""])[0]
        raise ConfigError(f"{entry} failed to import: {type(exc).__name__}: {first}", **at,
                          hint="fix the module; --debug shows the traceback") from exc
    return module


def _register(pm: pluggy.PluginManager, module: ModuleType, name: str, entry: str, at: dict[str, Any]) -> None:
    from ftp.plugin_manager import PluginLoadError, check

    try:
        pm.register(module, name=name)
    except pluggy.PluginValidationError as exc:  # an argument the hook does not have
        raise ConfigError(f"{entry}: {str(exc).splitlines()[0]}", **at, hint="see docs/plugin-hooks.md") from None
    try:
        check(pm)  # a misspelt hook name
    except PluginLoadError as exc:
        pm.unregister(module)
        raise ConfigError(f"{entry}: {exc}", **at) from None
    if not pm.get_hookcallers(module):
        pm.unregister(module)
        raise ConfigError(f"{entry}: defines no hook implementation", **at,
                          hint="mark its functions with @hookimpl (from ftp import hookimpl) and name them after "
                               "hooks (docs/plugin-hooks.md)")
