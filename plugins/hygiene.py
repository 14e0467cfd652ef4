"""File hygiene: encoding, line endings, blank lines, truncation, JSON arrays, huge lines and files, and
lines the strict JSON parser refuses (too deep, huge numbers, NaN, repeated keys, lone surrogates).

Each problem gets its own finding, naming the line; nothing is loaded whole (the scanner caps lines).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from ftp.data.checks import CheckSettings, DataCheck, Record, check_hooks
from ftp.data.scan import BOM
from ftp.data.sources import is_table
from ftp.types import CheckContext, DatasetRef, Finding


# the strict parser's refusals (ftp.json_safe): each is one error on its line
PARSE_HINTS = {
    "too-deep": "no chat example nests this deep; the line is probably generated garbage or an attack: remove it",
    "number-too-long": "write the value as a string, or remove it",
    "nan-value": "write null or a finite number; NaN and Infinity are not JSON",
    "duplicate-key": "keep one copy of the key",
    "lone-surrogate": "often text cut in the middle of an emoji (a UTF-16 pair split in two): repair or remove it",
    "null-cell": "fill the cell, or drop the row",
}


def _head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(4096)


def _size(path: Path) -> int:
    """Bytes on disk: a save_to_disk folder's files together."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


class HygieneSettings(CheckSettings):
    max_line_mb: float = Field(16, gt=0, description="longer lines are not read (an error)")
    max_file_mb: float | None = Field(None, gt=0, description="larger files get a warning (default: the backend's "
                                      "limit, e.g. Azure OpenAI's 512 MB; none for a local run)")
    workers: Literal["auto"] | int = Field("auto", description="processes that read a large file in byte ranges "
                                           "(auto: one per CPU; 1: one process); the report is the same")

    @field_validator("workers", mode="before")
    @classmethod
    def _auto_or_count(cls, value: Any) -> Any:
        if value == "auto" or (type(value) is int and value >= 1):
            return value
        raise ValueError("give auto or a number of processes, at least 1")


class HygieneCheck(DataCheck):
    name = "hygiene"
    Settings = HygieneSettings

    @classmethod
    def build(cls, context: CheckContext) -> "HygieneCheck":
        return cls(cls.settings_from(context), context)

    def __init__(self, settings: HygieneSettings, context: CheckContext) -> None:
        super().__init__()
        self.settings = settings
        self.stats: dict[str, dict[str, Any]] = {}
        self.max_file_mb = settings.max_file_mb or context.limits.max_file_mb
        self.file_limit_by = "validate.hygiene.max_file_mb" if settings.max_file_mb else f"the {context.backend} backend"

    def begin(self, ref: DatasetRef) -> list[Finding]:
        self.file = str(ref.path)
        self.blank: list[int] = []
        self.crlf = 0
        self.nonblank = 0
        head = b"" if is_table(ref.path) else _head(ref.path)  # a table has no BOM, and is no JSON array
        self.bom = head.startswith(BOM)
        self.array = head.removeprefix(BOM).lstrip().startswith(b"[")
        size = _size(ref.path)
        size_mb = size / 2**20
        self.stats[self.file] = {"bytes": size, "bom": self.bom}
        out: list[Finding] = []
        if self.array:
            out += self.finding("error", "json-array", "the file is a JSON array; fine-tuning needs JSONL: one JSON "
                                "object per line", file=self.file, line=1,
                                hint="convert with: jq -c '.[]' file.json > file.jsonl")
        if self.max_file_mb and size_mb > self.max_file_mb:
            out += self.finding("warning", "large-file", f"the file is {size_mb:,.0f} MB; {self.file_limit_by} takes "
                                f"training files under {self.max_file_mb:,.0f} MB", file=self.file,
                                hint="split it, or sample the data")
        return out

    def observe(self, record: Record) -> list[Finding] | None:
        if record.newline == b"\r\n":
            self.crlf += 1
        if record.blank:
            self.blank.append(record.line)
            return None
        self.nonblank += 1
        if record.problem is None or self.array:
            return None
        if record.problem == "line-too-long":
            return self.finding("error", "line-too-long", f"line of {record.detail} is over the "
                                f"{self.settings.max_line_mb:g} MiB limit and was not read", record,
                                hint="an example this long cannot be trained on; remove it")
        if record.problem == "not-utf8":
            return self.finding("error", "not-utf8", f"not valid UTF-8 ({record.detail})", record,
                                hint="re-encode the file as UTF-8")
        if record.problem == "invalid-json" and record.newline == b"":
            return self.finding("error", "truncated-last-line", f"the last line is cut off ({record.detail}) "
                                "and has no newline", record, hint="the file was probably truncated; re-export it")
        if record.problem == "invalid-json":
            return self.finding("error", "invalid-json", f"not valid JSON: {record.detail}", record)
        return self.finding("error", record.problem, record.detail, record, hint=PARSE_HINTS.get(record.problem))

    def end(self, ref: DatasetRef, lines: int) -> list[Finding]:
        out: list[Finding] = []
        self.stats[self.file].update(lines=lines, blank_lines=len(self.blank), crlf_lines=self.crlf)
        if self.nonblank == 0:
            out += self.finding("error", "empty-file", "the file has no examples" if lines else "the file is empty",
                                file=self.file)
        if self.blank:
            shown = ", ".join(map(str, self.blank[:10])) + (" ..." if len(self.blank) > 10 else "")
            out += self.finding("info", "blank-lines", f"{len(self.blank)} blank line(s) skipped (lines {shown})",
                                file=self.file, line=self.blank[0])
        if self.crlf:
            out += self.finding("info", "crlf", f"{self.crlf} line(s) end in CRLF (accepted)", file=self.file)
        if self.bom:
            out += self.finding("info", "bom", "UTF-8 byte-order mark (accepted)", file=self.file, line=1)
        return out

    def summary(self) -> dict[str, Any]:
        return {"files": self.stats}

    def part(self) -> "HygieneCheck":
        part = self.part_copy()
        part.blank, part.crlf, part.nonblank, part.stats = [], 0, 0, {}
        return part

    def merge(self, part: "DataCheck") -> None:
        assert isinstance(part, HygieneCheck)
        self.blank += part.blank
        self.crlf += part.crlf
        self.nonblank += part.nonblank


ftp_config_sections, ftp_data_checks = check_hooks(HygieneCheck)
