"""How answers are compared: text normalisation (``evaluate.normalize``), JSON by value, word tokens.

One module so exact match, token F1 and ROUGE-L agree on what "the same answer" and "a word" mean.
Plain stdlib on purpose: it runs for every answer of every candidate.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any, Literal

NormalizeMode = Literal["none", "basic", "squad"]
MODES: tuple[NormalizeMode, ...] = ("none", "basic", "squad")

_SPACE = re.compile(r"\s+")
# English articles as whole words; \b is Unicode-aware on str patterns, so the "a" inside "ça" stays.
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")

# Scripts written without spaces between words: each character is a token of its own.
_CJK_RANGES: tuple[tuple[int, int], ...] = (
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x3005, 0x3007),  # ideographic iteration mark, closing mark, number zero
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3130, 0x318F),  # Hangul compatibility Jamo
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA960, 0xA97F),  # Hangul Jamo extended A
    (0xAC00, 0xD7FF),  # Hangul syllables, Jamo extended B
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # half-width Katakana
    (0x20000, 0x3FFFF),  # CJK extensions B and later, planes 2 and 3
)


def _collapse(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _drop_punctuation(text: str) -> str:
    """Delete every Unicode punctuation character (categories P*), as SQuAD's script deletes ASCII ones:
    "¿Qué?" and "「猫」" lose their marks too, not only "!"."""
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))


def normalize(text: str, mode: NormalizeMode) -> str:
    """``text`` as ``mode`` compares it.

    - ``none``: unchanged.
    - ``basic``: strip, one space for each run of whitespace, casefold ("Straße" == "STRASSE").
    - ``squad``: basic, then punctuation deleted, the articles a/an/the dropped, whitespace collapsed
      again (SQuAD's evaluation script, with Unicode punctuation)."""
    if mode == "none":
        return text
    if mode not in MODES:
        raise ValueError(f"normalize mode must be one of {', '.join(MODES)}, not {mode!r}")
    basic = _collapse(text).casefold()
    if mode == "basic":
        return basic
    return _collapse(_ARTICLES.sub(" ", _drop_punctuation(basic)))


_NOT_JSON = object()


def _json_container(text: str) -> Any:
    """The parsed value when ``text`` is a JSON object or array, else ``_NOT_JSON`` (a bare number or
    string is compared as text: "42" and "42.0" are different answers to a human)."""
    text = text.strip()
    if not text or text[0] not in "[{":
        return _NOT_JSON
    try:
        value = json.loads(text)
    except ValueError:
        return _NOT_JSON
    return value if isinstance(value, (dict, list)) else _NOT_JSON


def _canonical(value: Any) -> Any:
    """A hashable, order-free form of a JSON value that keeps true apart from 1 (Python's True == 1
    would make ``{"ok": true}`` equal ``{"ok": 1}``); 1 and 1.0 stay equal, as JSON numbers are."""
    if isinstance(value, dict):
        return ("object", frozenset((k, _canonical(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("array", tuple(_canonical(v) for v in value))
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    return ("string", value)


def answers_match(prediction: str, reference: str, mode: NormalizeMode) -> bool:
    """Whether the answer equals the reference under ``mode``. Two JSON objects or arrays are compared
    by value (key order and whitespace ignored, strings case-sensitive) in every mode but ``none``:
    a model that reorders keys gave the same record."""
    if mode != "none":
        left, right = _json_container(prediction), _json_container(reference)
        if left is not _NOT_JSON and right is not _NOT_JSON:
            return bool(_canonical(left) == _canonical(right))
    return normalize(prediction, mode) == normalize(reference, mode)


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def _is_word_char(ch: str) -> bool:
    """``\\w`` (letters, digits, underscore) plus combining marks, so Hindi or decomposed accents are not
    split inside a word (Python's ``\\w`` leaves out categories Mn/Mc)."""
    return ch.isalnum() or ch == "_" or unicodedata.category(ch).startswith("M")


def tokens(text: str) -> list[str]:
    """Unicode word tokens: runs of word characters, and each CJK ideograph, kana or hangul character
    alone (Chinese and Japanese put no spaces between words). Text is NFC-composed first so "é" typed
    as e + accent is one word. Unlike rouge-score's default tokenizer (``[a-z0-9]`` only), "café",
    "Brücke" and "猫" are tokens; case is kept (callers casefold or normalise first)."""
    out: list[str] = []
    word: list[str] = []
    for ch in unicodedata.normalize("NFC", text):
        if _is_cjk(ch):
            if word:
                out.append("".join(word))
                word = []
            out.append(ch)
        elif _is_word_char(ch):
            word.append(ch)
        elif word:
            out.append("".join(word))
            word = []
    if word:
        out.append("".join(word))
    return out
