"""A cache of tokenised training data, so the second run of the same pipeline skips tokenisation.

The key covers everything that changes the tokens or the mask: the data's bytes, the tokenizer's
files, the chat template, the maximum length and the loss setting. Entries live under
``$FTP_CACHE_DIR/tokenized`` (``~/.cache/ftp``) and are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from .chat import ChatFormat, Encoded
from .models import cache_root

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
Entry = tuple[int, Encoded]  # (line number, encoding)


def cache_key(data_sha256: str, tokenizer_dir: Path, fmt: ChatFormat, max_length: int, loss_on: str) -> str:
    digest = hashlib.sha256()
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).exists():
            digest.update(name.encode() + hashlib.sha256((tokenizer_dir / name).read_bytes()).digest())
    digest.update(json.dumps([data_sha256, fmt.template, max_length, loss_on]).encode())
    return digest.hexdigest()


def _path(key: str) -> Path:
    return cache_root() / "tokenized" / f"{key}.json"


def load(key: str) -> list[Entry] | None:
    try:
        rows = json.loads(_path(key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return [(n, Encoded(ids, labels, bool(cut))) for n, ids, labels, cut in rows]


def save(key: str, entries: list[Entry]) -> None:
    path = _path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump([[n, e.input_ids, e.labels, int(e.truncated)] for n, e in entries], fh, separators=(",", ":"))
    os.replace(tmp, path)
