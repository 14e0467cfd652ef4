"""Example length in tokens, counted with the target model's tokenizer, against the model's limit.

Without a tokenizer for the target (an Azure model without tiktoken's files, a built-in model not yet
converted), counts are estimated the OpenAI cookbook way (3 tokens per message + 4 characters per
token + 3) and labelled as estimates.
"""

from __future__ import annotations

import math
from statistics import median
from typing import Any

from ftp import hookimpl
from ftp.data.checks import CheckSettings, DataCheck, Record
from ftp.data.files import message_text
from ftp.types import CheckContext, ConfigSection, Example, Finding
from pydantic import Field

AZURE_LIMIT = 65_536  # tokens per training example for gpt-4o-mini and gpt-4.1-mini
BATCH = 1024


class LengthSettings(CheckSettings):
    max_tokens: int | None = Field(None, gt=0, description="override the model's limit")


class EstimateCounter:
    name = "estimate: 3 per message + 4 characters per token + 3"
    limit = None
    exact = False

    def count(self, examples: list[Example]) -> list[int]:
        out = []
        for ex in examples:
            total = 3
            for m in ex.get("messages") or []:
                content = m.get("content") if isinstance(m, dict) else None
                total += 3 + math.ceil(len(message_text(content)) / 4)
            out.append(total)
        return out


O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"


class TiktokenCounter:
    """The gpt-4o / gpt-4.1 family's own encoding, counted the OpenAI cookbook way."""

    name = "tiktoken o200k_base (gpt-4o family)"
    limit = None
    exact = True

    def __init__(self, encoding: Any) -> None:
        self.encoding = encoding

    def count(self, examples: list[Example]) -> list[int]:
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


def counter_for(context: CheckContext) -> Any:
    if context.token_counter is not None:
        return context.token_counter
    if context.backend == "azure":
        return tiktoken_counter() or EstimateCounter()
    return EstimateCounter()


def limit_for(context: CheckContext, counter: Any, settings: LengthSettings) -> int | None:
    if settings.max_tokens:
        return settings.max_tokens
    if context.backend == "azure":
        return AZURE_LIMIT
    if getattr(counter, "limit", None):
        return counter.limit
    return (context.settings.get("model") or {}).get("max_seq_length")


class LengthCheck(DataCheck):
    name = "length"
    Settings = LengthSettings

    def __init__(self, context: CheckContext, settings: LengthSettings) -> None:
        super().__init__()
        self.counter = counter_for(context)
        self.limit = limit_for(context, self.counter, settings)
        self.buffer: list[tuple[Record, Example]] = []
        self.lengths: dict[str, list[int]] = {}
        self.over: int = 0

    def observe(self, record: Record) -> list[Finding] | None:
        if record.messages is None:
            return None
        self.buffer.append((Record(record.file, record.split, record.line, b""), record.example))
        return self._flush() if len(self.buffer) >= BATCH else None

    def _flush(self) -> list[Finding]:
        batch, self.buffer = self.buffer, []
        out: list[Finding] = []
        for (rec, _), n in zip(batch, self.counter.count([ex for _, ex in batch])):
            self.lengths.setdefault(rec.split or "train", []).append(n)
            if self.limit and n > self.limit:
                self.over += 1
                out += self.finding("warning", "too-long", f"{n:,} tokens, over the limit of {self.limit:,}: the end of "
                                    "the conversation (the answer) would be cut off", rec,
                                    hint="shorten the example, or raise model.max_seq_length if the model allows")
        return out

    def finish(self) -> list[Finding]:
        return self._flush()

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tokenizer": self.counter.name, "exact": bool(self.counter.exact),
                               "limit": self.limit, "over_limit": self.over, "splits": {}}
        for split, values in self.lengths.items():
            values = sorted(values)
            out["splits"][split] = {
                "examples": len(values), "total_tokens": sum(values), "min": values[0], "median": median(values),
                "p95": values[min(len(values) - 1, int(0.95 * len(values)))], "max": values[-1],
                "histogram": histogram(values)}
        return out


def histogram(values: list[int], bins: int = 20) -> dict[str, list[float]]:
    lo, hi = values[0], values[-1]
    width = max(1.0, (hi - lo) / bins)
    counts: list[float] = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / width))] += 1
    return {"edges": [lo + i * width for i in range(bins + 1)], "counts": counts}


@hookimpl
def ftp_config_sections() -> list[ConfigSection]:
    return [LengthCheck.config_section()]


@hookimpl
def ftp_data_checks(context: CheckContext) -> list[DataCheck]:
    return [LengthCheck(context, LengthCheck.settings_from(context))]
