"""Checking pipeline data against pydantic models, with errors that name file, line and key and never
echo a secret.

pydantic is lax where a pipeline file must not be: ``epochs: yes`` becomes 1, ``.inf`` passes
``gt=0``. So values are checked strictly first (numbers are numbers, finite, strings hold no NUL),
for core and plugin models alike. A value that came from an environment variable is never shown in
an error: the message names the variable instead, because the wrong ``${VAR}`` is often a key.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from ftp import redact
from ftp.errors import ConfigError

KeyPath = tuple[str | int, ...]
_NUMBERS = (int, float)
NOT_FINITE = "expected a finite number"


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """'did you mean' text for a misspelt name, or None."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def _unwrap(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [a for arg in typing.get_args(annotation) for a in _unwrap(arg)]
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    return [annotation]


def _field(model: type[BaseModel], name: str | int) -> Any:
    return model.model_fields.get(str(name)) or next(
        (fi for fi in model.model_fields.values() if fi.alias == name), None)


def _step(annotations: list[Any], part: str | int) -> list[Any]:
    """The annotations of the value at ``part`` inside a value of any of ``annotations``."""
    nxt: list[Any] = []
    for ann in annotations:
        origin = typing.get_origin(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            f = _field(ann, part)
            if f is not None:
                nxt.extend(_unwrap(f.annotation))
        elif origin is dict:
            nxt.extend(_unwrap(typing.get_args(ann)[1]))
        elif origin in (list, tuple, set) and isinstance(part, int):
            args = [a for a in typing.get_args(ann) if a is not Ellipsis]
            if args:
                nxt.extend(_unwrap(args[min(part, len(args) - 1)] if origin is tuple else args[0]))
    return nxt


def _keys_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """Valid keys of the mapping at ``loc`` inside ``model``, for 'did you mean'."""
    current: list[Any] = [model]
    for part in loc:
        current = _step(current, part)
    return [fi.alias or name for ann in current if isinstance(ann, type) and issubclass(ann, BaseModel)
            for name, fi in ann.model_fields.items()]


def _wants_number_not_bool(annotations: list[Any]) -> bool:
    return (any(a in _NUMBERS for a in annotations)
            and not any(a is bool or a is Any or a is object or a is str for a in annotations))


def _at(node: Any, path: KeyPath) -> Any:
    for part in path:
        node = node[part]
    return node


def _finite_text(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except (ValueError, OverflowError):
        return True  # not a number at all: pydantic says so, naming the type


def strict_problem(node: Any, annotations: list[Any], path: KeyPath = ()) -> tuple[KeyPath, str] | None:
    """The first value pydantic would wrongly accept: a yes/no for a number, inf/nan, a NUL character."""
    if isinstance(node, bool):
        return (path, "expected a number, got a yes/no value") if _wants_number_not_bool(annotations) else None
    if isinstance(node, float) and not math.isfinite(node):
        return path, f"expected a finite number, got {node}"
    if isinstance(node, str) and "\x00" in node:
        return path, "contains a NUL character (\\0)"
    if isinstance(node, str) and _wants_number_not_bool(annotations) and not _finite_text(node):
        return path, NOT_FINITE  # pydantic reads "1.0e400" and "nan" as floats
    items: Iterable[tuple[str | int, Any]] = (
        node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ())
    for key, value in items:
        if isinstance(key, str) and "\x00" in key:
            return path + (key,), "the key contains a NUL character (\\0)"
        found = strict_problem(value, _step(annotations, key), path + (key,))
        if found:
            return found
    return None


def set_label(assignment: str) -> str:
    """``--set KEY=VALUE`` as an error may show it: secret values masked, a long value cut."""
    shown = redact.redact_assignment(assignment)
    return f"--set {shown if len(shown) <= 80 else shown[:77] + '...'}"


@dataclass
class Located:
    """The file being checked: its lines, where ``--set`` and ``${VAR}`` values went, what is secret."""

    file: str
    lines: dict[KeyPath, int]
    secrets: set[str] = field(default_factory=set)
    from_set: dict[KeyPath, str] = field(default_factory=dict)
    from_env: dict[KeyPath, list[str]] = field(default_factory=dict)  # the variables each value was built from
    backend: str = ""  # whose ``backends.<name>`` block was merged into the sections

    def line(self, path: KeyPath) -> int | None:
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None

    def fail(self, path: KeyPath, message: str, hint: str | None = None) -> typing.NoReturn:
        key = ".".join(str(p) for p in path) or None
        message, hint = self.hide(message), self.hide(hint) if hint else None
        for n in range(len(path), 0, -1):
            if path[:n] in self.from_set:
                raise ConfigError(message, file=set_label(self.from_set[path[:n]]), key=key, hint=hint)
        raise ConfigError(message, file=self.file, line=self.line(path), key=key, hint=hint)

    def hide(self, text: str) -> str:
        """``text`` without any secret this file expanded or holds."""
        return redact.scrub(text, self.secrets)

    def env_vars(self, path: KeyPath) -> list[str]:
        """The variables the value at ``path`` came from (a backend block's copy included)."""
        for candidate in (path, ("backends", self.backend) + path):
            if candidate in self.from_env:
                return self.from_env[candidate]
        return []

    def shown(self, path: KeyPath, value: Any) -> str:
        """How an offending value may appear in a message: as itself, as its variable, or not at all."""
        names = self.env_vars(path)
        if names:
            return f"got the value of {', '.join('$' + n for n in names)}"
        if isinstance(value, (dict, list)):
            return ""
        if isinstance(value, str) and (redact.looks_secret(value) or any(s in value for s in self.secrets)
                                       or (path and redact.is_secret_name(str(path[-1])))):
            return "got a value that looks like a secret; not shown"
        return f"got {value!r}"

    def validate(self, model: type[BaseModel], data: Any, prefix: KeyPath, names: Iterable[str] = ()) -> BaseModel:
        problem = strict_problem(data, [model], prefix)
        if problem:
            path, message = problem
            if message == NOT_FINITE:
                message += f" ({self.shown(path, _at(data, path[len(prefix):]))})"
            self.fail(path, message)
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            self._explain(exc.errors()[0], model, prefix, names)

    def _explain(self, err: Any, model: type[BaseModel], prefix: KeyPath, names: Iterable[str]) -> typing.NoReturn:
        loc = tuple(err["loc"])
        path = prefix + loc
        if err["type"] == "extra_forbidden":
            valid = sorted(set(_keys_at(model, loc[:-1]) + list(names if not loc[:-1] else ())))
            self.fail(path, "unknown key", suggest(str(loc[-1]), valid) or
                      (f"valid keys: {', '.join(valid)}" if valid else None))
        if err["type"] == "missing":
            self.fail(path, "required key is missing")
        value = err.get("input")
        message = str(err["msg"]).removeprefix("Value error, ")
        if isinstance(value, str) and len(value) >= 4:
            message = message.replace(repr(value), "it").replace(value, "it")  # validators that echo the value
        shown = self.shown(path, value)
        self.fail(path, f"{message} ({shown})" if shown else message)
