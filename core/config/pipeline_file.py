"""Reading a pipeline file: YAML with line numbers, ``${VAR}`` expansion, ``--set`` overrides,
backend overrides, plugin sections, and errors that name file, line and key.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from ftp import redact
from ftp.config.model_source import model_source
from ftp.config.check import KeyPath, Located, set_label, suggest
from ftp.config.catalog import Catalog
from ftp.config.local_plugins import with_local_plugins
from ftp.errors import ConfigError, UserError
from ftp.config.settings import ATTRIBUTE, COMMON_SECTIONS, CommonSettings, PipelineSettings
from ftp.config.shorthand import expand_shorthand
from ftp.config.yaml_load import MAX_BYTES, load_value, load_yaml

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
PATH_KEYS: tuple[tuple[str, str], ...] = (("data", "train"), ("data", "validation"), ("data", "test"),
                                          ("registration", "store"), ("deploy", "store"),
                                          ("evaluate", "json_schema"), ("registration", "artifacts"),
                                          ("serve", "request_log"))


@dataclass
class Pipeline:
    """A validated pipeline file, resolved for one backend."""

    path: Path
    backend: str
    settings: PipelineSettings
    backend_settings: dict[str, Any]
    sections: dict[str, BaseModel]
    raw: dict[str, Any]
    lines: dict[KeyPath, int]
    secrets: set[str]
    sha256: str
    overrides: list[str]

    def locate(self, *paths: KeyPath) -> str:
        """``file:line`` of the first of these keys present in the file (the file alone if none is)."""
        for path in paths:
            if path in self.lines:
                return f"{self.path}:{self.lines[path]}"
        return str(self.path)

    def section(self, path: str) -> BaseModel | None:
        return self.sections.get(path)

    def setting(self, dotted: str) -> Any:
        """Look up ``a.b.c`` (file keys) in the merged settings, then in plugin sections."""
        if dotted in self.sections:
            return self.sections[dotted]
        node: Any = self.settings
        for part in dotted.split("."):
            part = ATTRIBUTE.get(part, part) if node is self.settings else part
            node = node.get(part) if isinstance(node, dict) else getattr(node, part, None)
        return node

    def as_dict(self) -> dict[str, Any]:
        """The effective settings, plugin sections included, as plain data (what plugins receive)."""
        data = self.settings.model_dump(mode="json", by_alias=True)
        data["backends"] = {self.backend: self.backend_settings}
        for name, model in self.sections.items():
            target = data.setdefault("validate", {}) if name.startswith("validate.") else data
            target[name.split(".", 1)[-1]] = model.model_dump(mode="json")
        return data

    def resolved_yaml(self) -> str:
        """The effective pipeline with secrets replaced, for the run directory and ``--dry-run``."""
        return yaml.safe_dump(redact.redact_tree(self.as_dict(), self.secrets), sort_keys=False)

    def stored_overrides(self) -> list[str]:
        """The ``--set`` assignments as ``state.json`` may keep them: a secret value is not stored."""
        return [redact.redact_assignment(a, self.secrets) for a in self.overrides]


def _parse(path: Path) -> tuple[dict[str, Any], dict[KeyPath, int]]:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise UserError(f"{path}: {size / 2**20:.1f} MiB is too large for a pipeline file "
                            f"(at most {MAX_BYTES // 2**20} MiB; they are a few KB): is this the right file?")
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path}: pipeline file not found") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} cannot be decoded)",
                          file=str(path), line=line, hint="save the file as UTF-8") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read pipeline file: {exc.strerror or exc}") from None
    data, lines = load_yaml(text, str(path))
    if not isinstance(data, dict):
        raise ConfigError("the pipeline file must be a mapping of sections (name:, data:, train: ...)",
                          file=str(path), line=1)
    return data, lines


# --- ${VAR} expansion and --set ------------------------------------------------------------------


def _expand(node: Any, path: KeyPath, ctx: Located) -> Any:
    if isinstance(node, dict):
        return {k: _expand(v, path + (k,), ctx) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, path + (i,), ctx) for i, v in enumerate(node)]
    if isinstance(node, str) and path and redact.is_secret_name(str(path[-1])):
        _keep_secret(node, ctx)  # a literal key in the file: masked in every file and message
    if not isinstance(node, str) or "${" not in node:
        return node

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        value = os.environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                ctx.fail(path, f"environment variable {name} is not set",
                         f"export {name}=... or write ${{{name}:-default}}")
            return default
        ctx.from_env.setdefault(path, []).append(name)
        if (redact.is_secret_name(name) or (path and redact.is_secret_name(str(path[-1])))
                or redact.looks_secret(value)):
            _keep_secret(value, ctx)
        return value

    return _VAR.sub(sub, node)


def _keep_secret(value: str, ctx: Located) -> None:
    if len(value) >= 4:
        ctx.secrets.add(value)
        redact.remember(value)


def _apply_set(data: dict[str, Any], assignment: str, ctx: Located) -> None:
    key, sep, value = assignment.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {redact.scrub(assignment)!r}: expected KEY=VALUE, e.g. --set train.epochs=1")
    parts = key.strip().split(".")
    if redact.is_secret_name(parts[-1]) or redact.looks_secret(value):
        _keep_secret(value, ctx)
    ctx.from_set[tuple(parts)] = assignment
    for path in [p for p in ctx.from_env if p[: len(parts)] == tuple(parts)]:
        del ctx.from_env[path]  # the file's ${VAR} there is replaced
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise UserError(f"--set {key}: {part!r} is not a section")
        node = child
    try:
        node[parts[-1]] = load_value(value, set_label(assignment), key.strip()) if value.strip() else ""
    except ConfigError as exc:
        if not exc.detail.startswith("invalid YAML"):
            raise  # too deep, an alias bomb: refused like in a file
        node[parts[-1]] = value  # not YAML: the text as written


def _masked(assignment: str) -> bool:
    return assignment.partition("=")[2] == redact.MASK


def unmasked_overrides(stored: Sequence[str]) -> list[str]:
    """The stored ``--set`` assignments whose value was kept (what needs no secret, e.g. to cancel a run)."""
    return [a for a in stored if not _masked(a)]


def resume_overrides(stored: Sequence[str], given: Sequence[str], run_id: str) -> list[str]:
    """The overrides of a run being resumed: as stored, with the secret ones given again on the command line.

    ``state.json`` keeps ``--set KEY=***`` for a secret, so resuming needs the value once more; any
    other ``--set`` would change a run half done, which is refused.
    """
    masked = {a.partition("=")[0] for a in stored if _masked(a)}
    again = {a.partition("=")[0]: a for a in given}
    for key in again:
        if key not in masked:
            raise UserError("--set cannot change a run being resumed; start a new run instead"
                            + (f" (only the secret --set {', '.join(sorted(masked))} may be given again)"
                               if masked else ""))
    missing = sorted(masked - again.keys())
    if missing:
        raise UserError(f"run {run_id} was started with a secret in --set {missing[0]}, which is not stored; "
                        f"give it again: ftp run --resume {run_id} --set {missing[0]}=..., "
                        "or put it in an environment variable and write ${VAR} in the file")
    return [again.get(a.partition("=")[0], a) for a in stored]


# --- the loader -----------------------------------------------------------------------------------


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _plugin_sections(raw: dict[str, Any], catalog: Catalog, ctx: Located) -> dict[str, BaseModel]:
    """Validate and remove the sections plugins own, so the core schema sees only its own keys."""
    found: dict[str, BaseModel] = {}
    owned = {s.path: s.model for s in catalog.sections}
    validate_raw = raw.get("validate") or {}
    if not isinstance(validate_raw, dict):
        ctx.fail(("validate",), "must be a mapping of validator sections")
    known_validate = [p.split(".", 1)[1] for p in owned if p.startswith("validate.")]
    for name in validate_raw:
        if f"validate.{name}" not in owned:
            ctx.fail(("validate", name), "no installed validator plugin owns this section",
                     suggest(str(name), known_validate) or f"known: {', '.join(known_validate) or 'none'}")
    for path, model in owned.items():
        parts = path.split(".")
        node: Any = raw
        for p in parts:
            node = node.get(p) if isinstance(node, dict) else None
        if parts[0] == "validate":
            node = expand_shorthand(node)
        found[path] = ctx.validate(model, node or {}, tuple(parts))
        if len(parts) == 1:
            raw.pop(path, None)
    return found


def _check_backends(raw: dict[str, Any], catalog: Catalog, ctx: Located) -> dict[str, dict[str, Any]]:
    """Validate every ``backends.<name>`` block and return each one's backend-only settings."""
    blocks = raw.get("backends") or {}
    if not isinstance(blocks, dict):
        ctx.fail(("backends",), "must be a mapping of backend names to settings")
    own: dict[str, dict[str, Any]] = {}
    for name, block in blocks.items():
        spec = catalog.backends.get(name)
        if spec is None:
            ctx.fail(("backends", name), "unknown backend",
                     suggest(str(name), catalog.backends) or f"available: {', '.join(sorted(catalog.backends))}")
        block = block or {}
        if not isinstance(block, dict):
            ctx.fail(("backends", name), "must be a mapping")
        for section in COMMON_SECTIONS:
            if section in block:
                ctx.validate(CommonSettings, {section: block[section]}, ("backends", name))
        rest = {k: v for k, v in block.items() if k not in COMMON_SECTIONS}
        if spec.settings is None:
            if rest:
                key = next(iter(rest))
                ctx.fail(("backends", name, key), f"unknown key for backend {name!r}",
                         suggest(str(key), COMMON_SECTIONS))
            own[name] = {}
        else:
            own[name] = ctx.validate(spec.settings, rest, ("backends", name),
                                     names=COMMON_SECTIONS).model_dump(mode="json")
    return own


def _resolve_paths(settings: PipelineSettings, base: Path) -> None:
    for section, key in PATH_KEYS:
        value = getattr(getattr(settings, section), key)
        if value is not None and not Path(value).is_absolute():
            setattr(getattr(settings, section), key, (base / value).resolve())
    judge = settings.evaluate.judge
    if judge is not None and judge.cache is not None and not judge.cache.is_absolute():
        judge.cache = (base / judge.cache).resolve()  # one cache per project, wherever ftp runs from
    model_base = settings.model.base
    if model_base and model_source(model_base).builtin is None and (base / model_base).exists():
        settings.model = settings.model.model_copy(update={"base": str((base / model_base).resolve())})


def _check_names(settings: PipelineSettings, catalog: Catalog, ctx: Located, backend: str) -> None:
    known = sorted(catalog.metrics)
    chosen = settings.evaluate.metrics  # None: picked from the answers at evaluation, gated ones included
    for i, metric in enumerate(chosen or []):
        if metric not in catalog.metrics:
            ctx.fail(("evaluate", "metrics", i), f"unknown metric {metric!r}",
                     suggest(metric, known) or f"known: {', '.join(known)}")
    for metric, rule in settings.gate.rules().items():
        if metric not in catalog.metrics:
            ctx.fail(("gate", metric), "unknown metric", suggest(metric, known) or f"known: {', '.join(known)}")
        if chosen is not None and metric not in chosen:
            ctx.fail(("gate", metric), "the gate needs this metric but evaluate.metrics does not compute it",
                     f"add {metric} to evaluate.metrics")
        if rule.no_regression_vs and rule.no_regression_vs not in settings.evaluate.compare_to:
            ctx.fail(("gate", metric, "no_regression_vs"), f"{rule.no_regression_vs} is not evaluated",
                     f"add {rule.no_regression_vs} to evaluate.compare_to")
    if settings.registration.alias:  # a reserved alias (latest, v<N>) fails now, not after training
        from ftp.registry.refs import check_alias

        try:
            check_alias(settings.registration.alias)
        except UserError as exc:
            ctx.fail(("register", "alias"), str(exc))
    if settings.data.train is None:
        ctx.fail(("data", "train"), "required key is missing", "name the training data file")
    for section, key in PATH_KEYS[:3]:
        value = getattr(settings.data, key)
        if value is not None and not Path(value).exists():  # a file, or a datasets save_to_disk folder
            over = ("backends", backend, section, key)
            where = over if over in ctx.lines else (section, key)
            ctx.fail(where, f"file not found: {value}", "check the path; relative paths start at the pipeline file")
    if not settings.model.base:
        ctx.fail(("model", "base"), "required key is missing",
                 f"set model.base or backends.{backend}.model.base (e.g. builtin:gemma-3-270m)")


def load_pipeline(path: str | Path, backend: str, catalog: Catalog, overrides: Sequence[str] = ()) -> Pipeline:
    """Read, expand, override, merge and validate a pipeline file for ``backend``."""
    path = Path(path)
    raw, lines = _parse(path)
    catalog = with_local_plugins(catalog, path, raw.get("plugins"), lines, overrides)
    ctx = Located(str(path), lines, backend=backend)
    if backend not in catalog.backends:
        raise UserError(f"unknown backend {backend!r}; available: {', '.join(sorted(catalog.backends)) or 'none'}"
                        + (f" ({suggest(backend, catalog.backends)})" if suggest(backend, catalog.backends) else ""))
    raw = _expand(raw, (), ctx)
    for assignment in overrides:
        _apply_set(raw, assignment, ctx)
    sections = _plugin_sections(raw, catalog, ctx)
    own = _check_backends(raw, catalog, ctx)
    block = (raw.get("backends") or {}).get(backend) or {}
    merged = _deep_merge(raw, {k: v for k, v in block.items() if k in COMMON_SECTIONS})
    merged.pop("validate", None)
    names = list(PipelineSettings.model_fields) + ["validate"] + [s.path for s in catalog.sections]
    settings = ctx.validate(PipelineSettings, merged, (), names=names)
    assert isinstance(settings, PipelineSettings)
    _resolve_paths(settings, path.parent.resolve())
    _check_names(settings, catalog, ctx, backend)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Pipeline(path=path.resolve(), backend=backend, settings=settings, backend_settings=own.get(backend, {}),
                    sections=sections, raw=raw, lines=lines, secrets=ctx.secrets, sha256=digest,
                    overrides=list(overrides))
