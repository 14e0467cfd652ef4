"""Example length in tokens, counted with the target model's tokenizer, against the model's limit.

The backend answers ``ftp_token_counter`` with its tokenizer and declares its per-example limit in its
``BackendSpec``; without a tokenizer for the target (an Azure model without tiktoken's files, a
built-in model not yet converted), counts are estimated (``ftp.data.tokens``) and labelled so.
"""

from __future__ import annotations

from array import array
from statistics import median
from typing import Any

from ftp.data.checks import CheckSettings, DataCheck, Record, check_hooks
from ftp.data.tokens import EstimateCounter
from ftp.types import CheckContext, DatasetRef, Example, Finding
from pydantic import Field

BATCH = 1024  # examples are counted in batches that end at lines numbered a multiple of this, and at a file's end


class LengthSettings(CheckSettings):
    max_tokens: int | None = Field(None, gt=0, description="override the model's limit")


def counter_for(context: CheckContext) -> Any:
    return context.token_counter if context.token_counter is not None else EstimateCounter()


def limit_for(context: CheckContext, counter: Any, settings: LengthSettings) -> int | None:
    if settings.max_tokens:
        return settings.max_tokens
    if context.limits.max_tokens_per_example:
        return context.limits.max_tokens_per_example
    if getattr(counter, "limit", None):
        return counter.limit
    return (context.settings.get("model") or {}).get("max_seq_length")


class LengthCheck(DataCheck):
    name = "length"
    Settings = LengthSettings

    @classmethod
    def build(cls, context: CheckContext) -> "LengthCheck":
        return cls(context, cls.settings_from(context))

    def __init__(self, context: CheckContext, settings: LengthSettings) -> None:
        super().__init__()
        self.counter = counter_for(context)
        self.limit = limit_for(context, self.counter, settings)
        self.buffer: list[tuple[str, str | None, int, Example]] = []  # file, split, line, example
        self.lengths: dict[str, array[int]] = {}
        self.over: int = 0

    def observe(self, record: Record) -> list[Finding] | None:
        # batches end at fixed line numbers, so a file read in ranges makes the same findings in the same order
        if record.messages is not None:
            self.buffer.append((record.file, record.split, record.line, record.example))
        return self._flush() if record.line % BATCH == 0 and self.buffer else None

    def _flush(self) -> list[Finding]:
        batch, self.buffer = self.buffer, []
        out: list[Finding] = []
        for (file, split, line, _), n in zip(batch, self.counter.count([ex for *_, ex in batch])):
            self.lengths.setdefault(split or "train", array("q")).append(n)
            if self.limit and n > self.limit:
                self.over += 1
                out += self.finding("warning", "too-long", f"{n:,} tokens, over the limit of {self.limit:,}: the end of "
                                    "the conversation (the answer) would be cut off", file=file, line=line,
                                    hint="shorten the example, or raise model.max_seq_length if the model allows")
        return out

    def end(self, ref: DatasetRef, lines: int) -> list[Finding]:
        return self._flush()

    def part(self) -> "LengthCheck":
        part = self.part_copy()
        part.buffer, part.lengths, part.over = [], {}, 0
        return part

    def end_part(self, last: bool) -> list[Finding] | None:
        # the file's last batch is counted by the parent's end(), as with one process
        return None if last else self._flush()

    def merge(self, part: DataCheck) -> None:
        assert isinstance(part, LengthCheck)
        for split, values in part.lengths.items():
            self.lengths.setdefault(split, array("q")).extend(values)
        self.over += part.over
        self.buffer += part.buffer

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"tokenizer": self.counter.name, "exact": bool(self.counter.exact),
                               "limit": self.limit, "over_limit": self.over, "splits": {}}
        for split, counted in self.lengths.items():
            values = sorted(counted)
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


ftp_config_sections, ftp_data_checks = check_hooks(LengthCheck)
