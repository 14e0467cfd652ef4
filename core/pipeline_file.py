"""Reading a pipeline file: YAML with line numbers, ``${VAR}`` expansion, ``--set`` overrides,
backend overrides, plugin sections, and errors that name file, line and key.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import os
import re
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ftp.checks import expand_shorthand
from ftp.errors import ConfigError, UserError
from ftp.settings import ATTRIBUTE, COMMON_SECTIONS, CommonSettings, PipelineSettings
from ftp.types import BackendSpec, ConfigSection, MetricSpec

KeyPath = tuple[str | int, ...]
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECRET_NAME = re.compile(r"(^|_)(api_?key|key|secret|token|password|passwd|credentials?|connection_string|sas)$")
PATH_KEYS: tuple[tuple[str, str], ...] = (("data", "train"), ("data", "validation"), ("data", "test"),
                                          ("registration", "store"), ("deploy", "store"))


@dataclass
class Catalog:
    """What plugins declared, which the schema needs to check names against."""

    backends: dict[str, BackendSpec] = field(default_factory=dict)
    sections: list[ConfigSection] = field(default_factory=list)
    metrics: dict[str, MetricSpec] = field(default_factory=dict)


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
        """The effective pipeline with secrets replaced, for the run directory."""
        return yaml.safe_dump(_redact(self.as_dict(), self.secrets), sort_keys=False)


def _is_secret_key(key: str) -> bool:
    """``api_key``, ``AZURE_OPENAI_KEY``, ``client_secret``: yes; ``max_new_tokens``: no."""
    return bool(_SECRET_NAME.search(key.lower()))


def _redact(node: Any, secrets: set[str], key: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _redact(v, secrets, str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_redact(v, secrets, key) for v in node]
    if isinstance(node, str):
        if (_is_secret_key(key) and node) or any(s and s in node for s in secrets):
            return "***"
    return node


# --- YAML with line numbers --------------------------------------------------------------------


def _line_map(node: yaml.Node, path: KeyPath, out: dict[KeyPath, int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            out[path + (k.value,)] = k.start_mark.line + 1
            _line_map(v, path + (k.value,), out)
            out[path + (k.value,)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _line_map(v, path + (i,), out)


def _parse(path: Path) -> tuple[dict[str, Any], dict[KeyPath, int]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path}: pipeline file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read pipeline file: {exc}") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"invalid YAML: {problem}", file=str(path), line=mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        raise ConfigError("the pipeline file must be a mapping of sections (name:, data:, train: ...)",
                          file=str(path), line=1)
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _line_map(node, (), lines)
    return data, lines


# --- ${VAR} expansion and --set ------------------------------------------------------------------


def _expand(node: Any, path: KeyPath, ctx: "_Ctx") -> Any:
    if isinstance(node, dict):
        return {k: _expand(v, path + (k,), ctx) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, path + (i,), ctx) for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        value = os.environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                ctx.fail(path, f"environment variable {name} is not set",
                         f"export {name}=... or write ${{{name}:-default}}")
            value = default
        if (_is_secret_key(name) or _is_secret_key(str(path[-1]) if path else "")) and len(value) >= 4:
            ctx.secrets.add(value)
        return value

    return _VAR.sub(sub, node)


def _apply_set(data: dict[str, Any], assignment: str, ctx: "_Ctx") -> None:
    key, sep, value = assignment.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set train.epochs=1")
    parts = key.strip().split(".")
    ctx.from_set[tuple(parts)] = assignment
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise UserError(f"--set {key}: {part!r} is not a section")
        node = child
    try:
        node[parts[-1]] = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        node[parts[-1]] = value


# --- errors ---------------------------------------------------------------------------------------


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """'did you mean' text for a misspelt name, or None."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def _unwrap(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [a for arg in typing.get_args(annotation) for a in _unwrap(arg)]
    return [annotation]


def _keys_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """Valid keys of the mapping at ``loc`` inside ``model``, for 'did you mean'."""
    current: list[Any] = [model]
    for part in loc:
        nxt: list[Any] = []
        for ann in current:
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                f = ann.model_fields.get(str(part)) or next(
                    (fi for fi in ann.model_fields.values() if fi.alias == part), None)
                if f is not None:
                    nxt.extend(_unwrap(f.annotation))
            elif typing.get_origin(ann) is dict:
                nxt.extend(_unwrap(typing.get_args(ann)[1]))
        current = nxt
    keys: list[str] = []
    for ann in current:
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += [fi.alias or name for name, fi in ann.model_fields.items()]
    return keys


@dataclass
class _Ctx:
    file: str
    lines: dict[KeyPath, int]
    secrets: set[str] = field(default_factory=set)
    from_set: dict[KeyPath, str] = field(default_factory=dict)

    def line(self, path: KeyPath) -> int | None:
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None

    def fail(self, path: KeyPath, message: str, hint: str | None = None) -> typing.NoReturn:
        key = ".".join(str(p) for p in path) or None
        for n in range(len(path), 0, -1):
            if path[:n] in self.from_set:
                raise ConfigError(message, file=f"--set {self.from_set[path[:n]]}", key=key, hint=hint)
        raise ConfigError(message, file=self.file, line=self.line(path), key=key, hint=hint)

    def validate(self, model: type[BaseModel], data: Any, prefix: KeyPath, names: Iterable[str] = ()) -> BaseModel:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = tuple(err["loc"])
            path = prefix + loc
            if err["type"] == "extra_forbidden":
                valid = _keys_at(model, loc[:-1]) + list(names if not loc[:-1] else ())
                self.fail(path, "unknown key", suggest(str(loc[-1]), valid) or
                          (f"valid keys: {', '.join(sorted(valid))}" if valid else None))
            if err["type"] == "missing":
                self.fail(path, "required key is missing")
            value = err.get("input")
            shown = f" (got {value!r})" if not isinstance(value, (dict, list)) else ""
            self.fail(path, f"{err['msg']}{shown}")


# --- the loader -----------------------------------------------------------------------------------


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _plugin_sections(raw: dict[str, Any], catalog: Catalog, ctx: _Ctx) -> dict[str, BaseModel]:
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


def _check_backends(raw: dict[str, Any], catalog: Catalog, ctx: _Ctx) -> dict[str, dict[str, Any]]:
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
    model_base = settings.model.base
    if model_base and not model_base.startswith("builtin:") and (base / model_base).exists():
        settings.model.base = str((base / model_base).resolve())


def _check_names(settings: PipelineSettings, catalog: Catalog, ctx: _Ctx, backend: str) -> None:
    known = sorted(catalog.metrics)
    for i, metric in enumerate(settings.evaluate.metrics):
        if metric not in catalog.metrics:
            ctx.fail(("evaluate", "metrics", i), f"unknown metric {metric!r}",
                     suggest(metric, known) or f"known: {', '.join(known)}")
    for metric in settings.gate:
        if metric not in catalog.metrics:
            ctx.fail(("gate", metric), "unknown metric", suggest(metric, known) or f"known: {', '.join(known)}")
        if metric not in settings.evaluate.metrics:
            ctx.fail(("gate", metric), "the gate needs this metric but evaluate.metrics does not compute it",
                     f"add {metric} to evaluate.metrics")
    if settings.data.train is None:
        ctx.fail(("data", "train"), "required key is missing", "name the training JSONL file")
    for section, key in PATH_KEYS[:3]:
        value = getattr(settings.data, key)
        if value is not None and not Path(value).is_file():
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
    ctx = _Ctx(str(path), lines)
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
