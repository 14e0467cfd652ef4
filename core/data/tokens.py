"""The token count every check can fall back on when no backend knows the target's tokenizer."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ftp.data.files import message_text
from ftp.types import Example


class EstimateCounter:
    """The OpenAI cookbook's rule of thumb (3 tokens per message + 4 characters per token + 3), labelled
    an estimate wherever it is shown, so nobody mistakes it for the model's own count."""

    name = "estimate: 3 per message + 4 characters per token + 3"
    limit = None
    exact = False

    def count(self, examples: Sequence[Example]) -> list[int]:
        out = []
        for ex in examples:
            total = 3
            for m in ex.get("messages") or []:
                content = m.get("content") if isinstance(m, dict) else None
                total += 3 + math.ceil(len(message_text(content)) / 4)
            out.append(total)
        return out
