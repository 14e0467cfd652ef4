"""Checking data files: the validate step, ``ftp validate`` and ``ftp data check`` all come here."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ftp.data.parallel import resolve_workers
from ftp.data.scan import DEFAULT_MAX_LINE_BYTES, configure, scan
from ftp.hooks import Hooks
from ftp.types import BackendLimits, CheckContext, DataBundle, Finding

ORDER: dict[str, int] = {"error": 0, "warning": 1, "info": 2}


@dataclass
class DataReport:
    """Findings and per-check statistics for a set of data files."""

    backend: str
    data: DataBundle
    findings: list[Finding] = field(default_factory=list)
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        c: Counter[str] = Counter(f.severity for f in self.findings)
        return {s: c.get(s, 0) for s in ORDER}

    def sorted_findings(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: (ORDER[f.severity], f.file or "", f.line or 0))

    def to_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "files": [ref.model_dump(mode="json") for ref in self.data.files()],
                "counts": self.counts(), "summaries": self.summaries,
                "findings": [f.model_dump(mode="json") for f in self.sorted_findings()]}


def check_data(hooks: Hooks, data: DataBundle, settings: dict[str, Any], backend: str,
               workers: int | str | None = None) -> DataReport:
    """Run every data check in one streaming pass, then the whole-file validators.

    ``workers`` (default: ``validate.hygiene.workers``, ``auto``): processes that read a large file in
    byte ranges (``ftp.data.parallel``); the report is the same for any number."""
    model = (settings.get("model") or {}).get("base") or None
    spec = hooks.backends().get(backend)
    context = CheckContext(backend=backend, settings=settings, data=data, token_counter=hooks.token_counter(backend, model),
                           limits=spec.limits if spec else BackendLimits())
    active = configure(hooks.data_checks(context), context)
    hygiene = context.section("hygiene")
    max_mb = hygiene.get("max_line_mb")
    processes = resolve_workers(workers if workers is not None else hygiene.get("workers"))
    result = scan(data, active, int(max_mb * 2**20) if max_mb else DEFAULT_MAX_LINE_BYTES, processes)
    findings = result.findings + hooks.validate_data(data, settings)
    return DataReport(backend=backend, data=data, findings=findings, summaries=result.summaries)
