"""Secrets never leave the process: redaction by key name and by value shape, and a scrub of known values.

Three layers, because each alone misses something. A key's *name* catches ``clientSecret: hunter2``
whatever its value looks like; a value's *shape* catches a bearer token or a SAS URL under an
innocent key; and the *known values* (what ``${VAR}`` expansion put into the file, what secret-named
environment variables hold) are scrubbed from everything ftp prints or writes, so an error raised
deep inside a library cannot echo a key either.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections import Counter
from collections.abc import Collection, Iterable
from typing import Any

MASK = "***"
MIN_SCRUB = 6  # shorter known values are not scrubbed from text: "1" or "true" would mangle every message

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_ANYWHERE = {"secret", "secrets", "password", "passwd", "pwd", "passphrase", "credential", "credentials",
             "apikey", "accesskey", "privatekey"}
_LAST = {"key", "token", "sas", "sig", "signature", "authorization", "cookie"}
_TOKENIZER = {"eos", "bos", "pad", "unk", "sep", "cls", "mask", "special", "start", "end"}  # eos_token is no secret

_PREFIXED = re.compile(
    r"(?:sk-|sk_live_|sk_test_|rk_live_|ghp_|gho_|ghu_|ghs_|github_pat_|glpat-|xox[abprs]-|hf_|AIza|"
    r"npm_|pypi-|dop_v1_)[A-Za-z0-9_\-]{16,}"
    r"|(?:AKIA|ASIA)[A-Z0-9]{16}"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----")
_BEARER = re.compile(r"\b(Bearer|Basic|Token)\s+([A-Za-z0-9._~+/=\-]{8,})", re.IGNORECASE)
_URL_SECRET = re.compile(
    r"([?&;](?:sig|signature|token|access_token|api[-_]?key|key|code|secret|password|client_secret|"
    r"x-amz-signature|x-goog-signature)=)([^&#\s'\"]+)", re.IGNORECASE)
_CONN_SECRET = re.compile(r"((?:AccountKey|SharedAccessKey|SharedAccessSignature|Password|Pwd)=)([^;\s'\"]+)",
                          re.IGNORECASE)
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.\-]*://[^/\s:@]+:)([^@/\s]+)(@)", re.IGNORECASE)
_HEX = re.compile(r"[0-9a-fA-F]{32,}")
_TOKEN = re.compile(r"[A-Za-z0-9+/=_\-]{24,}")

_known: set[str] = set()


def words(key: str) -> list[str]:
    """``clientSecret``, ``client-secret``, ``CLIENT_SECRET`` -> ``['client', 'secret']``."""
    return [w for w in re.split(r"[_\-.\s]+", _CAMEL.sub("_", key).lower()) if w]


def is_secret_name(key: str) -> bool:
    """``api_key``, ``accessToken``, ``secret_value``, ``AZURE_CLIENT_SECRET``: yes; ``max_new_tokens``,
    ``api_key_env`` (the *name* of a variable) and ``pack_tokens``: no."""
    parts = words(key)
    if not parts:
        return False
    if _ANYWHERE.intersection(parts) or parts[-2:] == ["connection", "string"]:
        return True
    return parts[-1] in _LAST and not (parts[-1] == "token" and len(parts) > 1 and parts[-2] in _TOKENIZER)


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def looks_random(value: str) -> bool:
    """A long token of mixed letters and digits that is not a word, a path or a model name (an API key)."""
    if _HEX.fullmatch(value):
        return _entropy(value) >= 3.0  # a key, not 0000... or a run of one digit
    if not _TOKEN.fullmatch(value):
        return False
    classes = sum(any(f(c) for c in value) for f in (str.islower, str.isupper, str.isdigit))
    return classes == 3 and _entropy(value) >= 3.8


def looks_secret(value: str) -> bool:
    """By shape alone: a key with a known prefix, a bearer token, a signed URL, a connection string."""
    return bool(_PREFIXED.search(value) or _BEARER.search(value) or _URL_SECRET.search(value)
                or _CONN_SECRET.search(value) or _USERINFO.search(value)) or looks_random(value.strip())


def mask_shapes(text: str) -> str:
    """The secret parts of ``text`` masked, the rest kept (``https://acct/...?sv=1&sig=***``)."""
    text = _PREFIXED.sub(MASK, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _URL_SECRET.sub(lambda m: m.group(1) + MASK, text)
    text = _CONN_SECRET.sub(lambda m: m.group(1) + MASK, text)
    return _USERINFO.sub(lambda m: m.group(1) + MASK + m.group(3), text)


def remember(value: str) -> None:
    """A value that must never be shown (scrubbed from every message and file ftp writes from now on)."""
    if value and len(value) >= MIN_SCRUB:
        _known.add(value)


def forget_all() -> None:
    """Tests that change the environment start clean."""
    _known.clear()


def known_secrets() -> set[str]:
    """Remembered values plus what secret-named environment variables hold now (``AZURE_CLIENT_SECRET``)."""
    found = {v for k, v in os.environ.items() if len(v) >= MIN_SCRUB and is_secret_name(k)}
    return found | _known


def scrub(text: str, also: Iterable[str] = ()) -> str:
    """Known secret values (and ``also``, a file's own) and secret shapes masked in free text."""
    for value in sorted(known_secrets().union(also), key=len, reverse=True):
        if value in text:
            text = text.replace(value, MASK)
    return mask_shapes(text)


def scrub_tree(node: Any) -> Any:
    """``scrub`` applied to every string of JSON-like data."""
    if isinstance(node, dict):
        return {k: scrub_tree(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [scrub_tree(v) for v in node]
    return scrub(node) if isinstance(node, str) else node


def redact_tree(node: Any, also: Collection[str] = (), key: str = "") -> Any:
    """Settings for a file or a screen: values under secret names, or holding one of ``also`` (a file's
    own secrets), masked whole; the rest scrubbed."""
    if isinstance(node, dict):
        return {k: redact_tree(v, also, str(k)) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [redact_tree(v, also, key) for v in node]
    if isinstance(node, str) and node:
        if is_secret_name(key) or any(s in node for s in also):
            return MASK
        return scrub(node)
    return node


def redact_assignment(assignment: str, also: Iterable[str] = ()) -> str:
    """A ``--set KEY=VALUE`` as it may be stored or shown: the value masked when the key or the value is
    secret, or the assignment holds a known secret (or one of ``also``)."""
    key, sep, value = assignment.partition("=")
    if not sep:
        return scrub(assignment, also)
    last = key.strip().rsplit(".", 1)[-1]
    if value and (is_secret_name(last) or looks_secret(value)
                  or any(s in assignment for s in known_secrets().union(also))):
        return f"{key}={MASK}"
    return assignment


class ScrubbingFormatter(logging.Formatter):
    """For run.log: a library's log line or a traceback may quote a key; the file never does."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))
