"""A bounded, strict parser for one line of JSON data.

``json.loads`` trusts its input more than a data file deserves: deep nesting blows Python's recursion
limit, a 5,000-digit number trips the int-conversion limit (both tracebacks), and it silently accepts
what other JSON parsers (and the fine-tuning services) reject or read differently: ``NaN`` and
``Infinity``, repeated keys (the last wins in Python, the first elsewhere) and lone UTF-16 surrogates
(``"\\ud800"``, which no UTF-8 encoder can write back, so the split and the tokenizer crash on them).
``loads_line`` refuses all of these with a :class:`JsonLineError` that carries a finding code.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

MAX_DEPTH = 64  # a chat example nests 4-6 deep; tool schemas a dozen. json.loads recurses once per level
MAX_NUMBER_CHARS = 100  # far below Python's 4,300-digit int limit; no weight or id needs more

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class JsonLineError(ValueError):
    """Why a line was refused: ``code`` is the finding code, ``detail`` says what and where."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


def nesting_depth(text: str) -> int:
    """The deepest bracket nesting outside strings, computed without recursion (C-speed passes)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:  # the common line: too few brackets to matter
        return 0
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _constant(name: str) -> Any:
    raise JsonLineError("nan-value", f"{name} is not valid JSON (Python reads it; the fine-tuning services do not)")


def _int(literal: str) -> int:
    digits = len(literal.lstrip("-"))
    if digits > MAX_NUMBER_CHARS:
        raise JsonLineError("number-too-long", f"a number with {digits:,} digits (the limit is {MAX_NUMBER_CHARS})")
    return int(literal)


def _float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise JsonLineError("number-too-long", f"a number of {len(literal):,} characters (the limit is "
                                               f"{MAX_NUMBER_CHARS})")
    value = float(literal)
    if not math.isfinite(value):
        raise JsonLineError("nan-value", f"the number {literal} is too large for a float: it reads as infinity")
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise JsonLineError("duplicate-key", f"key {_show(key)} appears twice in one object (parsers disagree "
                                             "on which value wins)")
    return obj


def _show(text: str) -> str:
    """A key or value for a message: short, and printable even when it holds a lone surrogate."""
    shown = text if len(text) <= 40 else text[:37] + "..."
    return ascii(shown) if _has_surrogate(shown) else repr(shown)


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def surrogate_path(value: Any, path: str = "") -> str | None:
    """Where the first string (or key) holding a lone surrogate is, as ``messages[0].content``."""
    if isinstance(value, str):
        return (path or "the line") if _has_surrogate(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if _has_surrogate(key):
                return f"a key of {path or 'the top-level object'}"
            found = surrogate_path(item, here)
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = surrogate_path(item, f"{path}[{i}]")
            if found:
                return found
    return None


# one decoder for every line: json.loads(text, **hooks) builds a new one per call, a third of its time here
_DECODER = json.JSONDecoder(parse_constant=_constant, parse_int=_int, parse_float=_float, object_pairs_hook=_object)


def loads_line(text: str) -> Any:
    """Parse one line of JSON, refusing what is unsafe or ambiguous (see the module docstring)."""
    depth = nesting_depth(text)
    if depth > MAX_DEPTH:
        raise JsonLineError("too-deep", f"JSON nested {depth:,} levels deep (the limit is {MAX_DEPTH})")
    try:
        if text.startswith("\ufeff"):  # what json.loads says of a BOM, word for word
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise JsonLineError("invalid-json", f"{exc.msg} at column {exc.colno}") from None
    except RecursionError:  # the depth scan bounds recursion; a belt for a stack smaller than expected
        raise JsonLineError("too-deep", f"JSON nested too deeply to parse (the limit is {MAX_DEPTH})") from None
    if _SURROGATE_ESCAPE.search(text):  # only a \\uD800-\\uDFFF escape can make one: valid UTF-8 cannot
        where = surrogate_path(value)
        if where:
            raise JsonLineError("lone-surrogate", f"{where} holds a lone UTF-16 surrogate (a \\uD800-\\uDFFF "
                                                  "escape without its pair), which is not text")
    return value
