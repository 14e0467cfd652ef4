"""How many examples there are, judged by the field's guidance (and by what a split needs)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ftp import hookimpl
from ftp.data.checks import CheckSettings, DataCheck, Record
from ftp.types import CheckContext, ConfigSection, DatasetRef, Finding


class QuantitySettings(CheckSettings):
    minimum: int = Field(10, ge=1, description="fewer is an error: Azure refuses them, a split cannot be made")
    few_shot_below: int = Field(50, ge=1, description="under this, few-shot prompting usually wins")
    warn_below: int = Field(100, ge=1)
    recommended: int = Field(1000, ge=1)


def judge(count: int, file: str, s: QuantitySettings) -> Finding | None:
    if count < s.minimum:
        return Finding(severity="error", code="too-few-examples", file=file,
                       message=f"{count} examples; at least {s.minimum} are needed (Azure refuses fewer, and a "
                               "train/validation/test split needs them)")
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

    def __init__(self, settings: QuantitySettings) -> None:
        super().__init__()
        self.settings = settings
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
            finding = judge(self._current, str(ref.path), self.settings)
            return [finding] if finding else None
        return None

    def summary(self) -> dict[str, Any]:
        return {"examples": self.counts}


@hookimpl
def ftp_config_sections() -> list[ConfigSection]:
    return [QuantityCheck.config_section()]


@hookimpl
def ftp_data_checks(context: CheckContext) -> list[DataCheck]:
    return [QuantityCheck(QuantityCheck.settings_from(context))]
