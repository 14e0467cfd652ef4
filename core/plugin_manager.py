"""The one plugin manager: built-ins and entry-point plugins registered the same way.

Environment switches (read once per process, like llm's ``LLM_LOAD_PLUGINS``):

- ``FTP_LOAD_PLUGINS=a,b``: load only these third-party plugins (empty: none). Built-ins still load.
- ``FTP_DISABLE_PLUGINS=a,b``: skip these plugins, built-in (full or short name) or third-party.
- ``FTP_TRACE_PLUGINS=1``: log every hook call, the plugins it reached and its duration to stderr.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from importlib import import_module, metadata
from collections.abc import Mapping, Sequence
from typing import Any

import pluggy

from ftp import __version__
from ftp.backends import BUILTIN as BUILTIN_BACKENDS
from ftp.errors import FtpError
from ftp.plugins import BUILTIN as BUILTIN_CHECKS_AND_STEPS

ENTRY_POINT_GROUP = "ftp"

BUILTIN_PLUGINS: tuple[str, ...] = BUILTIN_CHECKS_AND_STEPS + BUILTIN_BACKENDS  # in call order

trace_log = logging.getLogger("ftp.trace")


@dataclass
class PluginInfo:
    """What ``ftp plugins`` shows for one registered plugin."""

    name: str
    version: str
    builtin: bool
    hooks: list[str] = field(default_factory=list)
    distribution: str | None = None


def _names(var: str) -> set[str] | None:
    raw = os.environ.get(var)
    if raw is None:
        return None
    return {n.strip() for n in raw.split(",") if n.strip()}


def _matches(name: str, names: set[str]) -> bool:
    return name in names or name.rsplit(".", 1)[-1] in names


class PluginLoadError(FtpError):
    """A plugin failed to import or declares a hook that does not exist."""


def _attach_tracer(pm: pluggy.PluginManager) -> None:
    if not trace_log.handlers:  # stderr, even while a run also logs to its run.log
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("ftp.trace: %(message)s"))
        trace_log.addHandler(handler)
    starts: list[float] = []

    def before(hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        starts.append(time.perf_counter())

    def after(outcome: Any, hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        ms = (time.perf_counter() - starts.pop()) * 1000
        plugins = ",".join(i.plugin_name for i in impls)
        failed = " (raised)" if outcome.exception is not None else ""
        trace_log.warning("hook %s -> [%s] %.1f ms%s", hook_name, plugins, ms, failed)

    pm.add_hookcall_monitoring(before, after)


def selected_entry_points() -> list[metadata.EntryPoint]:
    """The third-party plugins the switches let in, not yet imported (a cheap scan of installed metadata)."""
    disabled = _names("FTP_DISABLE_PLUGINS") or set()
    only = _names("FTP_LOAD_PLUGINS")
    return [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)
            if not _matches(ep.name, disabled) and (only is None or _matches(ep.name, only))]


def build_plugin_manager() -> tuple[pluggy.PluginManager, dict[str, PluginInfo]]:
    """Make a fresh manager; tests call this directly, everything else uses ``get_plugin_manager``."""
    from ftp import hookspecs  # with ftp.types (pydantic): not for the CLI's cheap look at what is installed

    pm = pluggy.PluginManager("ftp")
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    disabled = _names("FTP_DISABLE_PLUGINS") or set()
    for modname in BUILTIN_PLUGINS:
        if _matches(modname, disabled):
            continue
        pm.register(import_module(modname), name=modname)
        infos[modname] = PluginInfo(modname, __version__, builtin=True)
    for ep in selected_entry_points():
        if pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken third-party package must say which one it is
            raise PluginLoadError(f"plugin {ep.name!r} ({ep.value}) failed to import: {exc}") from exc
        try:
            pm.register(plugin, name=ep.name)
        except pluggy.PluginValidationError as exc:  # e.g. a hook implementation with an argument the hook lacks
            lines = str(exc).splitlines()
            raise PluginLoadError(f"plugin {ep.name!r}: {lines[0]}" + (f" ({lines[-1]})" if len(lines) > 1 else "")) from exc
        dist = ep.dist
        infos[ep.name] = PluginInfo(ep.name, dist.version if dist else "?", builtin=False,
                                    distribution=dist.name if dist else None)
    check(pm)
    if os.environ.get("FTP_TRACE_PLUGINS", "") not in ("", "0"):
        _attach_tracer(pm)
    return pm, infos


def check(pm: pluggy.PluginManager) -> None:
    """Refuse hook implementations whose names match no hookspec (a typo would be silently ignored)."""
    import difflib

    from ftp import hookspecs

    known = [name for name in dir(hookspecs) if name.startswith("ftp_")]
    for hook_name, caller in vars(pm.hook).items():
        if not hook_name.startswith("ftp_") or caller.spec is not None:
            continue
        for impl in caller.get_hookimpls():
            close = difflib.get_close_matches(hook_name, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "see docs/plugin-hooks.md for the hook names"
            raise PluginLoadError(f"plugin {impl.plugin_name!r} implements unknown hook {hook_name!r}; {hint}")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginLoadError(f"plugin {pm.get_name(exc.plugin)!r}: {exc}") from exc


def plugin_table(pm: pluggy.PluginManager, infos: dict[str, PluginInfo]) -> list[PluginInfo]:
    """Plugins with the hooks each implements, for ``ftp plugins``."""
    for name, info in infos.items():
        plugin = pm.get_plugin(name)
        if plugin is None:
            continue
        info.hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
    for name, plugin in pm.list_name_plugin():  # plugins registered at run time (tests, inline)
        if name not in infos and plugin is not None:
            infos[name] = PluginInfo(name, "?", builtin=False,
                                     hooks=sorted(h.name for h in pm.get_hookcallers(plugin) or []))
    return list(infos.values())


_cached: tuple[pluggy.PluginManager, dict[str, PluginInfo]] | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager, built on first use."""
    global _cached
    if _cached is None:
        _cached = build_plugin_manager()
    return _cached[0]


def cached_plugin_manager() -> pluggy.PluginManager | None:
    """The process-wide manager if it has been built, without building it."""
    return _cached[0] if _cached is not None else None


def get_plugin_infos() -> dict[str, PluginInfo]:
    get_plugin_manager()
    assert _cached is not None
    return _cached[1]


def reset_plugin_manager() -> None:
    """Forget the cached manager so the next use re-reads the environment (tests)."""
    global _cached
    _cached = None
