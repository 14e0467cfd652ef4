"""What an answer looks like: a JSON object with its key set, an array, a fenced code block, a list,
free text, a short answer that may turn out to be a label; and how to name each shape in a message.

The ``output_format`` check classifies every final answer with ``classify`` and reports the shapes.
"""

from __future__ import annotations

import json
import re
from typing import Any

Shape = tuple[Any, ...]

EMPTY: Shape = ("empty",)
TEXT: Shape = ("text",)
LABEL: Shape = ("label",)
ARRAY: Shape = ("array",)
BAD_JSON: Shape = ("bad-json",)
NUMBERED: Shape = ("numbered",)
BULLETED: Shape = ("bulleted",)
OTHER_OBJECT: Shape = ("object", None)  # once too many distinct key sets were seen

MAX_LABEL_CHARS = 40

NUMBERED_RE = re.compile(r"^\s*\(?\d{1,3}[.)]\s+\S")
BULLET_RE = re.compile(r"^\s*[-*+\u2022]\s+\S")
FENCE_RE = re.compile(r"^```([\w+-]*)\s*\n.*\n```$", re.DOTALL)


def final_answer(example: Any) -> str | None:
    """The content of the last assistant message (text parts joined), or a completion; None if none."""
    if not isinstance(example, dict):
        return None
    messages = example.get("messages")
    if isinstance(messages, list):
        for m in reversed(messages):
            if isinstance(m, dict) and m.get("role") == "assistant":
                content = m.get("content")
                if isinstance(content, str):
                    return content
                if isinstance(content, list):
                    return "".join(p["text"] for p in content
                                   if isinstance(p, dict) and isinstance(p.get("text"), str))
                return None
        return None
    completion = example.get("completion")
    return completion if isinstance(completion, str) else None


def label_value(text: str) -> str:
    return text.strip().strip(".!").strip().lower()


def classify(text: str) -> tuple[Shape, int, str | None]:
    """The answer's shape (labels are decided at the end), its length in words, and its label value if short."""
    stripped = text.strip()
    words = len(stripped.split())
    if not stripped:
        return EMPTY, 0, None
    head, tail = stripped[0], stripped[-1]
    if head in "{[" and tail in "}]" or head == '"' and tail == '"':
        try:
            value = json.loads(stripped)
        except ValueError:
            return BAD_JSON, words, None
        if isinstance(value, dict):
            return ("object", tuple(sorted(value))), words, None
        if isinstance(value, list):
            return ARRAY, words, None
        return ("json", type(value).__name__), words, None
    fence = FENCE_RE.match(stripped)
    if fence:
        return ("code", fence.group(1).lower()), words, None
    lines = [line for line in stripped.splitlines() if line.strip()]
    if len(lines) >= 2:
        numbered = sum(1 for line in lines if NUMBERED_RE.match(line))
        bulleted = sum(1 for line in lines if BULLET_RE.match(line))
        items = max(numbered, bulleted)
        if items >= 2 and 2 * items >= len(lines):
            return (NUMBERED if numbered >= bulleted else BULLETED), words, None
    if len(lines) == 1 and words <= 3 and len(stripped) <= MAX_LABEL_CHARS:
        return TEXT, words, label_value(stripped)
    return TEXT, words, None


def show_keys(keys: tuple[str, ...]) -> str:
    shown = ", ".join(keys[:8]) + (f" (+{len(keys) - 8} more)" if len(keys) > 8 else "")
    return shown


def describe(shape: Shape, labels: list[str] | None = None, plural: bool = False) -> str:
    kind = shape[0]
    if kind == "object":
        keys = shape[1]
        if keys is None:
            return "JSON objects with other key sets" if plural else "a JSON object with another key set"
        if not keys:
            return "empty JSON objects" if plural else "an empty JSON object"
        return (f"JSON objects with keys {show_keys(keys)}" if plural else
                f"a JSON object with key{'s' if len(keys) > 1 else ''} {show_keys(keys)}")
    if kind == "label":
        shown = ", ".join((labels or [])[:10]) + (" ..." if len(labels or []) > 10 else "")
        return f"one of {len(labels or [])} label{'s' if len(labels or []) != 1 else ''} ({shown})"
    if kind == "json":
        return f"JSON {shape[1]} values" if plural else f"a JSON {shape[1]} value"
    if kind == "code":
        lang = f"{shape[1]} " if shape[1] else ""
        return f"fenced {lang}code blocks" if plural else f"a fenced {lang}code block"
    names = {"array": "a JSON array", "bad-json": "invalid JSON", "numbered": "a numbered list",
             "bulleted": "a bulleted list", "text": "free text", "empty": "empty"}
    plurals = {"array": "JSON arrays", "bad-json": "invalid JSON", "numbered": "numbered lists",
               "bulleted": "bulleted lists", "text": "free text", "empty": "empty"}
    return (plurals if plural else names)[kind]
