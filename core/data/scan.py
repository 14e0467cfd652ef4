"""One streaming pass over the data files, feeding every data check.

Lines are read in binary with a length cap, so a 2 GB file without a newline or a 50 MB line never
lands in memory whole; each line is decoded and parsed once for all checks, by ``json_safe``: a hostile
line (nested 100,000 deep, a 5,000-digit number, NaN, a repeated key, a lone surrogate) is a ``problem``
on that line, never an exception.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ftp.data.checks import CheckSettings, DataCheck, Record, parse_record
from ftp.data.files import BOM
from ftp.types import CheckContext, DataBundle, DatasetRef, Finding

DEFAULT_MAX_LINE_BYTES = 16 * 2**20


def read_records(ref: DatasetRef, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[Record]:
    from ftp.data.table_files import is_table, records

    if is_table(ref.path):  # a table's rows, each as the JSON line of its chat example
        yield from records(ref)
        return
    file = str(ref.path)
    with ref.path.open("rb") as fh:
        number = 0
        while True:
            chunk = fh.readline(max_line_bytes + 1)
            if not chunk:
                return
            number += 1
            too_long = len(chunk) > max_line_bytes and not chunk.endswith(b"\n")
            size = len(chunk)
            while too_long:  # skip the rest of the line without holding it
                rest = fh.readline(1 << 20)
                size += len(rest)
                if not rest or rest.endswith(b"\n"):
                    chunk = chunk[:256] + (rest[-2:] if rest.endswith(b"\r\n") else rest[-1:] if rest else b"")
                    break
            newline = b"\r\n" if chunk.endswith(b"\r\n") else b"\n" if chunk.endswith(b"\n") else b""
            raw = chunk[: len(chunk) - len(newline)]
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM):]
            record = Record(file=file, split=ref.split, line=number, raw=raw, newline=newline)
            if too_long:
                record.problem, record.detail = "line-too-long", f"{size / 2**20:.1f} MiB"
            elif raw.strip():
                parse_record(record)
            yield record


@dataclass
class Active:
    """A check with its plugin's name and the user's settings for it."""

    plugin: str
    check: DataCheck
    settings: CheckSettings


@dataclass
class ScanResult:
    findings: list[Finding] = field(default_factory=list)
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)


def configure(checks: list[tuple[str, DataCheck]], context: CheckContext) -> list[Active]:
    """Drop checks the file turned off; remember severity overrides."""
    active = []
    for plugin, check in checks:
        settings = check.settings_from(context)
        if settings.enabled:
            active.append(Active(plugin, check, settings))
    return active


def _collect(out: list[Finding], found: list[Finding] | None, item: Active) -> None:
    for f in found or ():
        update: dict[str, Any] = {"plugin": f.plugin or item.plugin}
        if item.settings.severity:
            update["severity"] = item.settings.severity
        out.append(f.model_copy(update=update))


def scan(data: DataBundle, active: list[Active], max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> ScanResult:
    result = ScanResult()
    out = result.findings
    for ref in data.files():
        for item in active:
            _collect(out, item.check.begin(ref), item)
        lines = 0
        for record in read_records(ref, max_line_bytes):
            lines = record.line
            for item in active:
                found = item.check.observe(record)
                if found:
                    _collect(out, found, item)
        for item in active:
            _collect(out, item.check.end(ref, lines), item)
    for item in active:
        _collect(out, item.check.finish() + item.check.overflow(), item)
        summary = item.check.summary()
        if summary:
            result.summaries[item.check.name] = summary
    return result
