"""Leakage: a validation or test example whose input also appears in the training data measures memory,
not generalisation. Inputs are compared after normalisation (case, whitespace)."""

from __future__ import annotations

from typing import Any

from ftp.data.checks import DataCheck, Record, check_hooks
from ftp.plugins.split import prompt_key
from ftp.types import CheckContext, DatasetRef, Finding


class LeakageCheck(DataCheck):
    name = "leakage"

    @classmethod
    def build(cls, context: CheckContext) -> "LeakageCheck | None":
        if context.data.validation is None and context.data.test is None:
            return None  # nothing to leak into: spend no memory
        return cls()

    def __init__(self) -> None:
        super().__init__()
        self.train: dict[int, int] = {}  # 64-bit key of the normalised input -> first training line
        self.leaked: dict[str, int] = {}
        self.training = True  # the current file is training data

    def observe(self, record: Record) -> list[Finding] | None:
        if record.messages is None:
            return None
        key = int(prompt_key(record.example)[:16], 16)
        if record.split in (None, "train"):
            self.train.setdefault(key, record.line)
            return None
        if key in self.train:
            self.leaked[record.split or "?"] = self.leaked.get(record.split or "?", 0) + 1
            return self.finding("warning", "leakage", f"this {record.split} example's input is also in the training "
                                f"data (line {self.train[key]})", record,
                                hint="remove it from one of the files, or let ftp split one file")
        return None

    def summary(self) -> dict[str, Any]:
        return {"leaked": self.leaked} if self.leaked else {}

    def begin(self, ref: DatasetRef) -> None:
        self.training = ref.split in (None, "train")

    def part(self) -> "LeakageCheck":
        """A training range's part collects its inputs; another file's looks them up in all of training's."""
        part = self.part_copy()
        part.train, part.leaked = {} if self.training else self.train, {}
        return part

    def end_part(self, last: bool) -> None:
        if not self.training:
            self.train = {}  # the parent has it: do not send it back

    def merge(self, part: DataCheck) -> None:
        assert isinstance(part, LeakageCheck)
        if self.training:
            for key, line in part.train.items():  # the first line of an input is its first range's
                self.train.setdefault(key, line)
        for split, n in part.leaked.items():
            self.leaked[split] = self.leaked.get(split, 0) + n


ftp_config_sections, ftp_data_checks = check_hooks(LeakageCheck)
