"""Streaming data checks: what a validator plugin returns from ``ftp_data_checks``.

The core reads every data file once, line by line, and hands each line (raw bytes, and the parsed
JSON when it parses) to every check. A million-example file is therefore parsed once, not once per
validator, and memory stays constant. A check keeps whatever running state it needs, reports
findings as it goes or at the end, and gives the report its statistics.

A large file is read in byte ranges by several processes (``ftp.data.parallel``) when every check can
run in parts: ``part`` makes an empty copy for one range, the copy observes that range in a worker,
``end_part`` closes it there, and back in the parent ``merge`` takes the copies in file order. Whatever a
check reports must come out the same as when one process read the whole file.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ftp.json_safe import JsonLineError, loads_line
from ftp.types import CheckContext, ConfigSection, DatasetRef, Finding, Severity

MAX_FINDINGS_PER_CODE = 50


@dataclass(slots=True)
class Record:
    """One line of a data file as the scanner read it."""

    file: str
    split: str | None
    line: int
    raw: bytes  # without the line ending; cut at the scanner's line limit
    example: Any = None  # the parsed JSON value, None when the line is blank or did not parse
    problem: str | None = None  # why it did not parse: not-utf8, invalid-json, line-too-long
    detail: str = ""  # the parser's message for ``problem``
    newline: bytes = b"\n"  # b"\r\n", b"\n" or b"" (last line without one)

    @property
    def blank(self) -> bool:
        return self.problem is None and self.example is None

    @property
    def messages(self) -> list[Any] | None:
        """The ``messages`` list of a chat example, or None for anything else."""
        if isinstance(self.example, dict) and isinstance(self.example.get("messages"), list):
            return self.example["messages"]
        return None


class CheckSettings(BaseModel):
    """Settings every check accepts in ``validate.<name>``; ``pii: error`` and ``pii: off`` are shorthands."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    severity: Severity | None = None  # replaces the severity of every finding the check makes


def parse_record(record: Record) -> None:
    """Decode and parse one line; a refused line keeps ``example`` None and says why in ``problem``."""
    try:
        text = record.raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        record.problem, record.detail = "not-utf8", f"invalid UTF-8 at byte {exc.start}"
        return
    try:
        record.example = loads_line(text)
    except JsonLineError as exc:
        record.problem, record.detail = exc.code, exc.detail
        return
    if record.example is None:  # json.loads(" null ") parses to None: keep blank-vs-null distinct
        record.problem, record.detail = "invalid-json", "the line is JSON null"


class DataCheck:
    """Base class with no-op hooks; subclasses override what they need."""

    name: str = "check"
    Settings: type[CheckSettings] = CheckSettings
    # a part's findings made by ``finding``, by id, with their number within the part (see ``part_copy``)
    _issued: dict[int, tuple[int, Finding]] | None = None

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    @classmethod
    def config_section(cls) -> ConfigSection:
        """The ``validate.<name>`` section this check owns (for ``ftp_config_sections``)."""
        return ConfigSection(path=f"validate.{cls.name}", model=cls.Settings)

    @classmethod
    def settings_from(cls, context: CheckContext) -> Any:
        """This check's settings from the pipeline (shorthands expanded, defaults filled in)."""
        return cls.Settings.model_validate(context.section(cls.name))

    @classmethod
    def build(cls, context: CheckContext) -> "DataCheck | None":
        """The check for these files, or None when it has nothing to do (so it keeps nothing in memory);
        ``check_hooks`` never builds a check the file turned off. The default takes the check's settings;
        a check that needs more of the context overrides this."""
        return cls(cls.settings_from(context))  # type: ignore[call-arg]

    def begin(self, ref: DatasetRef) -> list[Finding] | None:
        """A file starts."""
        return None

    def observe(self, record: Record) -> list[Finding] | None:
        """One line."""
        return None

    def end(self, ref: DatasetRef, lines: int) -> list[Finding] | None:
        """A file ended after ``lines`` lines."""
        return None

    def finish(self) -> list[Finding]:
        """All files seen: findings that need the whole picture."""
        return []

    def summary(self) -> dict[str, Any]:
        """Statistics for the data report (JSON-serialisable)."""
        return {}

    # --- running in parts (one byte range of a file per process) ---------------------------------

    def part(self) -> "DataCheck | None":
        """An empty copy of this check for one byte range of the file that just began, or None (the
        default): the check cannot run in parts, and every file is then read by one process.

        Called in the parent after ``begin``; it must leave this check as it was. The copy is pickled
        into a worker process, which imports its class by module name, observes the range's records
        (absolute line numbers) and calls ``end_part``; the copy is then pickled back and ``merge``d.
        ``part_copy`` starts one."""
        return None

    def end_part(self, last: bool) -> list[Finding] | None:
        """A part's range ended, in the worker (``last``: the range ends the file): finish buffered work
        here, so the parent does not, and drop what ``merge`` does not need (it travels back)."""
        return None

    def merge(self, part: "DataCheck") -> None:
        """Take in a part that observed the next range of the current file (parts come in file order).
        Finding counts and the per-code cap are merged by the scanner, not here."""
        raise NotImplementedError(f"{type(self).__name__}.part() made a part, so it must define merge()")

    def part_copy(self) -> Any:
        """A shallow copy with its own finding counts: a ``part`` resets its running state on it (replacing,
        not mutating, what it shares with this check)."""
        part = copy.copy(self)
        part._counts = Counter()
        part._issued = {}
        return part

    def finding(self, severity: Literal["error", "warning", "info"], code: str, message: str,
                record: Record | None = None, *, file: str | None = None, line: int | None = None,
                hint: str | None = None) -> list[Finding]:
        """A one-item list, or an empty one once this code has been reported MAX_FINDINGS_PER_CODE times."""
        n = self._counts[code] = self._counts[code] + 1
        if n > MAX_FINDINGS_PER_CODE:
            return []
        found = Finding(severity=severity, code=code, message=message, hint=hint,
                        file=record.file if record else file, line=record.line if record else line)
        if self._issued is not None:  # a part: the parent keeps it only if the whole file's cap allows
            self._issued[id(found)] = (n, found)
        return [found]

    def overflow(self) -> list[Finding]:
        """One summary finding per code that was reported more often than shown."""
        return [Finding(severity="info", code=code, message=f"{n - MAX_FINDINGS_PER_CODE} more findings of this kind "
                        "not listed") for code, n in self._counts.items() if n > MAX_FINDINGS_PER_CODE]


def check_hooks(*checks: type[DataCheck]) -> tuple[Callable[[], list[ConfigSection]],
                                                    Callable[[CheckContext], list[DataCheck]]]:
    """The two hooks a module of data checks needs, derived from its check classes:

        ftp_config_sections, ftp_data_checks = check_hooks(MyCheck)

    declares each check's ``validate.<name>`` section and builds the checks for a run."""
    from ftp import hookimpl

    @hookimpl
    def ftp_config_sections() -> list[ConfigSection]:
        return [check.config_section() for check in checks]

    @hookimpl
    def ftp_data_checks(context: CheckContext) -> list[DataCheck]:
        # a check the file turned off is not built at all, so it allocates nothing
        return [built for check in checks
                if check.settings_from(context).enabled and (built := check.build(context)) is not None]

    return ftp_config_sections, ftp_data_checks
