"""How many examples there are, judged by the field's guidance (and by what a split needs)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ftp.data.checks import CheckSettings, DataCheck, Record, check_hooks
from ftp.types import CheckContext, DatasetRef, Finding


class QuantitySettings(CheckSettings):
    minimum: int | None = Field(None, ge=1, description="fewer is an error (default: the backend's minimum, and "
                                "at least 10, which a train/validation/test split needs)")
    few_shot_below: int = Field(50, ge=1, description="under this, few-shot prompting usually wins")
    warn_below: int = Field(100, ge=1)
    recommended: int = Field(1000, ge=1)


SPLIT_MINIMUM = 10  # what a train/validation/test split needs


def minimum(s: QuantitySettings, context: CheckContext) -> tuple[int, str]:
    """(the fewest examples, why): the file's setting, else the backend's minimum or what a split needs."""
    if s.minimum is not None:
        return s.minimum, "validate.quantity.minimum"
    backend = context.limits.min_examples or 0
    if backend >= SPLIT_MINIMUM:
        return backend, f"the {context.backend} backend refuses fewer, and a train/validation/test split needs them"
    return SPLIT_MINIMUM, "a train/validation/test split needs them"


def judge(count: int, file: str, s: QuantitySettings, least: tuple[int, str]) -> Finding | None:
    if count < least[0]:
        return Finding(severity="error", code="too-few-examples", file=file,
                       message=f"{count} examples; at least {least[0]} are needed ({least[1]})")
    if count < s.few_shot_below:
        return Finding(severity="warning", code="few-examples", file=file, hint="see `ftp advise`",
                       message=f"{count} examples; under {s.few_shot_below}, few-shot prompting usually beats "
                               "fine-tuning")
    if count < s.warn_below:
        return Finding(severity="warning", code="few-examples", file=file,
                       message=f"{count} examples; aim for at least {s.warn_below}")
    if count < s.recommended:
        return Finding(severity="info", code="examples", file=file,
                       message=f"{count} examples; {s.recommended:,}+ is recommended for production")
    return None


class QuantityCheck(DataCheck):
    name = "quantity"
    Settings = QuantitySettings

    @classmethod
    def build(cls, context: CheckContext) -> "QuantityCheck":
        return cls(cls.settings_from(context), context)

    def __init__(self, settings: QuantitySettings, context: CheckContext) -> None:
        super().__init__()
        self.settings = settings
        self.least = minimum(settings, context)
        self.counts: dict[str, int] = {}
        self._current = 0

    def begin(self, ref: DatasetRef) -> None:
        self._current = 0

    def observe(self, record: Record) -> None:
        if record.messages is not None:
            self._current += 1

    def end(self, ref: DatasetRef, lines: int) -> list[Finding] | None:
        self.counts[ref.split or str(ref.path)] = self._current
        if ref.split in (None, "train"):
            finding = judge(self._current, str(ref.path), self.settings, self.least)
            return [finding] if finding else None
        return None

    def summary(self) -> dict[str, Any]:
        return {"examples": self.counts}

    def part(self) -> "QuantityCheck":
        part = self.part_copy()
        part._current, part.counts = 0, {}
        return part

    def merge(self, part: DataCheck) -> None:
        assert isinstance(part, QuantityCheck)
        self._current += part._current


ftp_config_sections, ftp_data_checks = check_hooks(QuantityCheck)
