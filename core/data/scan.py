"""One streaming pass over the data files, feeding every data check.

Each file's lines are read once (``ftp.data.lines``) and every record goes to every check in order; a
large file is read in byte ranges by several processes instead when the checks can run in parts
(``ftp.data.parallel``), with the same report.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ftp.data.checks import CheckSettings, DataCheck, Record
from ftp.data.files import BOM
from ftp.data.lines import DEFAULT_MAX_LINE_BYTES, read_records
from ftp.data.parallel import scan_in_parts
from ftp.types import CheckContext, DataBundle, Finding

__all__ = ["BOM", "DEFAULT_MAX_LINE_BYTES", "Active", "ScanResult", "collect", "configure", "read_records", "scan",
           "scan_records"]


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


def collect(out: list[Finding], found: list[Finding] | None, item: Active) -> None:
    for f in found or ():
        update: dict[str, Any] = {"plugin": f.plugin or item.plugin}
        if item.settings.severity:
            update["severity"] = item.settings.severity
        out.append(f.model_copy(update=update))


def scan(data: DataBundle, active: list[Active], max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
         workers: int = 1) -> ScanResult:
    """Every file through every check; a large file in byte ranges by ``workers`` processes when every
    check can run in parts (``ftp.data.parallel``), with the same report as one process."""
    result = ScanResult()
    out = result.findings
    for ref in data.files():
        for item in active:
            collect(out, item.check.begin(ref), item)
        lines = None
        if workers > 1:
            lines = scan_in_parts(ref, [item.check for item in active],
                                  lambda i, found: collect(out, found, active[i]), max_line_bytes, workers)
        if lines is None:
            lines = scan_records(read_records(ref, max_line_bytes), active, out)
        for item in active:
            collect(out, item.check.end(ref, lines), item)
    for item in active:
        collect(out, item.check.finish() + item.check.overflow(), item)
        summary = item.check.summary()
        if summary:
            result.summaries[item.check.name] = summary
    return result


def scan_records(records: Iterator[Record], active: list[Active], out: list[Finding]) -> int:
    """Feed records to every check in order; the last line number (0 for none)."""
    lines = 0
    checks = [(item, item.check.observe) for item in active  # the base class's observe does nothing
              if getattr(item.check.observe, "__func__", None) is not DataCheck.observe]
    for record in records:
        lines = record.line
        for item, observe in checks:
            found = observe(record)
            if found:
                collect(out, found, item)
    return lines
