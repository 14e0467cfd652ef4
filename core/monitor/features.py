"""What the monitor compares between served prompts and the training data, computed by one function for
both sides: the server on each request (stored in the request log, no text needed), and the monitor on
each training example (the reference). The same code on both sides is what makes "no drift on the
training distribution" hold; model-token counts are not used for drift because the data check's count
and the engine's differ by a template-dependent constant (docs/monitoring.md).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from typing import Any

from ftp.eval.normalize import normalize
from ftp.serve.request_log import prompt_text
from ftp.types import AnswerFormat

WORD = re.compile(r"\w+", re.UNICODE)
INVALID = "__invalid__"  # the answer-label of an answer outside the label set (as evaluation names it)
PROMPT_FEATURES = ("prompt_chars", "prompt_words", "prompt_turns", "prompt_nonletter", "prompt_nonascii")


def content(message: dict[str, Any]) -> str:
    """A message's text: a string, or the text parts of a list content joined."""
    value = message.get("content")
    if isinstance(value, list):
        return "".join(str(p.get("text", "")) for p in value if isinstance(p, dict) and p.get("type") == "text")
    return value if isinstance(value, str) else ""


def prompt_of(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A training example's prompt: the messages before its last assistant turn (what a client sends)."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=len(messages))
    return [dict(m) for m in messages[:last]]


def answer_of(messages: Sequence[dict[str, Any]]) -> str | None:
    for message in reversed(messages):
        if message.get("role") == "assistant":
            return content(message)
    return None


def words(text: str) -> list[str]:
    """Casefolded word tokens, Unicode-aware (vocabulary drift and the out-of-vocabulary rate)."""
    return WORD.findall(text.casefold())


def prompt_features(messages: Sequence[dict[str, Any]], logged: str | None = None) -> dict[str, float | int]:
    """Length in characters (of the logged prompt JSON; ``logged``: that JSON, when the caller already
    made it) and words, user turns, and the shares of non-letter characters and of non-ASCII letters
    among the non-space characters (a language or character-class shift: code, numbers, another script)."""
    texts = [content(m) for m in messages]
    if logged is None:
        logged = prompt_text([{"role": m.get("role"), "content": t} for m, t in zip(messages, texts)])
    joined = "".join(texts)
    visible = [c for c in joined if not c.isspace()]
    letters = [c for c in visible if c.isalpha()]
    return {
        "prompt_chars": len(logged),
        "prompt_words": sum(len(words(t)) for t in texts),
        "prompt_turns": sum(1 for m in messages if m.get("role") == "user"),
        "prompt_nonletter": round(1 - len(letters) / len(visible), 6) if visible else 0.0,
        "prompt_nonascii": round(sum(1 for c in letters if not c.isascii()) / len(letters), 6) if letters else 0.0,
    }


def answer_sha256(text: str) -> str:
    """The answer as exact match compares it (basic normalisation), hashed: feedback's expected answer
    is matched against it without the log keeping the answer."""
    return hashlib.sha256(normalize(text, "basic").encode("utf-8")).hexdigest()


def answer_checker(fmt: AnswerFormat | None) -> Callable[[str], tuple[bool | None, str | None]]:
    """(in format, label) of one answer: the same in-format test as evaluation and the smoke test; the
    label, for label tasks, as the set spells it (``__invalid__`` outside it)."""
    from ftp.eval.formats import in_format

    if fmt is None:
        return lambda _text: (None, None)
    test, _ = in_format(fmt)
    labels = {str(label).strip().casefold(): str(label) for label in fmt.labels} if fmt.kind == "label" else {}

    def check(text: str) -> tuple[bool | None, str | None]:
        label = labels.get(text.strip().casefold(), INVALID) if labels else None
        return test(text), label

    return check


def oov_share(tokens: Sequence[str], known: Callable[[str], bool]) -> float:
    """The share of ``tokens`` outside the training vocabulary (0 for an empty prompt)."""
    return round(sum(1 for t in tokens if not known(t)) / len(tokens), 6) if tokens else 0.0
