"""Token counts with a local model's own tokenizer, through the ``tokenizers`` library alone.

``ftp validate`` and ``ftp data check`` must stay light (no torch, no transformers), so this reads
``tokenizer.json`` directly and adds the chat template's per-message tokens as measured once on a
probe conversation; it is labelled exact only for the tokens, not the template.
"""

from __future__ import annotations

import json
from pathlib import Path

from ftp.data.files import message_text
from ftp.types import Example

from . import models

PER_MESSAGE = 4  # role marker, newline and end-of-turn, for the templates ftp uses by default


class LocalTokenCounter:
    exact = False

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.name = f"{folder.name} tokenizer (+{PER_MESSAGE} per message for the chat template)"
        config = folder / "config.json"
        limit = json.loads(config.read_text(encoding="utf-8")).get("max_position_embeddings") if config.exists() else None
        self.limit = int(limit) if limit else None

    def count(self, examples: list[Example]) -> list[int]:
        texts: list[str] = []
        sizes: list[int] = []
        for ex in examples:
            messages = [m for m in ex.get("messages") or [] if isinstance(m, dict)]
            sizes.append(len(messages))
            texts.extend(message_text(m.get("content")) for m in messages)
        encoded = self.tokenizer.encode_batch(texts, add_special_tokens=False) if texts else []
        out, i = [], 0
        for n in sizes:
            out.append(1 + sum(len(e.ids) + PER_MESSAGE for e in encoded[i:i + n]))
            i += n
        return out


def token_counter(model: str) -> LocalTokenCounter | None:
    """A counter when the model's tokenizer is on disk (a built-in model counts once converted)."""
    folder = models.folder_of(model)
    if not (folder / "tokenizer.json").exists():
        return None
    try:
        return LocalTokenCounter(folder)
    except Exception:  # a tokenizer.json the library cannot read: fall back to the labelled estimate
        return None
