"""Token counts for Azure OpenAI models: the gpt-4o / gpt-4.1 family's o200k_base encoding (tiktoken),
counted the OpenAI cookbook way; used by the data checks (``ftp_token_counter``), the cost estimate
and the predictor. ftp never downloads the encoding: without its file here, callers estimate."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

from ftp.data.files import message_text
from ftp.types import Example

O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"


class TiktokenCounter:
    """The gpt-4o / gpt-4.1 family's own encoding, counted the OpenAI cookbook way."""

    name = "tiktoken o200k_base (gpt-4o family)"
    limit = None
    exact = True

    def __init__(self, encoding: Any) -> None:
        self.encoding = encoding

    def count(self, examples: Sequence[Example]) -> list[int]:
        out = []
        for ex in examples:
            total = 3
            for m in ex.get("messages") or []:
                if not isinstance(m, dict):
                    continue
                total += 3 + sum(len(self.encoding.encode(message_text(v), disallowed_special=()))
                                 for k, v in m.items() if k in ("role", "content", "name"))
                total += 1 if "name" in m else 0
            out.append(total)
        return out


def count_text(text: str) -> int:
    """The tokens of one text: o200k_base when its file is here, else four characters a token."""
    counter = _shared_counter()
    return len(counter.encoding.encode(text, disallowed_special=())) if counter else math.ceil(len(text) / 4)


@functools.lru_cache(maxsize=1)
def _shared_counter() -> TiktokenCounter | None:
    """One look for the encoding per process (counting happens per answer when serving)."""
    return tiktoken_counter()


def tiktoken_counter() -> TiktokenCounter | None:
    """o200k_base when tiktoken and its encoding file are already here; ftp never downloads it."""
    import hashlib
    import os
    import tempfile

    try:
        import tiktoken
    except ImportError:
        return None
    cache = os.environ.get("TIKTOKEN_CACHE_DIR") or os.environ.get("DATA_GYM_CACHE_DIR") or os.path.join(
        tempfile.gettempdir(), "data-gym-cache")
    if not os.path.exists(os.path.join(cache, hashlib.sha1(O200K_URL.encode()).hexdigest())):
        return None
    try:
        return TiktokenCounter(tiktoken.get_encoding("o200k_base"))
    except Exception:  # a corrupt cache file: tiktoken would fetch, which cannot work here
        return None
