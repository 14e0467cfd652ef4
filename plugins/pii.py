"""PII and secrets in message contents: emails, phone numbers, card numbers (Luhn), IBANs (mod-97),
national ids (US SSN, UK National Insurance number), IP addresses, and leaked credentials (AWS access
key ids, GitHub tokens, ``sk-`` API keys, Slack tokens, private keys, JWTs).

Personal data is a warning, a secret an error (a leaked private key in training data is worse: a model
can learn to repeat it). Findings and the summary carry masked samples only, never the raw value.

This runs on every message of every example, so each detector sits behind a cheap test (a substring,
a digit count) and the regular expressions are compiled once, here.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from ftp.data.checks import CheckSettings, DataCheck, Record, check_hooks
from ftp.types import Finding
from pydantic import Field, field_validator

from .pii_detect import GROUPS, KINDS, LABELS, SECRETS, Gate, detect, mask, message_texts

MAX_SAMPLES = 5
SHOWN_PER_FINDING = 3


# --- the check ------------------------------------------------------------------------------------

class PiiSettings(CheckSettings):
    allow: list[str] = Field(default_factory=list,
                             description="values never reported: exact strings or regular expressions (full match, "
                                         "case-insensitive), e.g. support@example.com or '.*@example\\.com'")
    kinds: list[str] = Field(default_factory=lambda: list(KINDS),
                             description="detectors to run: " + ", ".join(KINDS) + "; or the groups "
                                         + ", ".join(GROUPS))

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, value: list[str]) -> list[str]:
        unknown = [k for k in value if k not in KINDS and k not in GROUPS]
        if unknown:
            raise ValueError(f"unknown kind(s) {', '.join(unknown)}; known: {', '.join(KINDS + tuple(GROUPS))}")
        return value


def _compile_allow(entries: list[str]) -> tuple[frozenset[str], re.Pattern[str] | None]:
    exact = frozenset(e.lower() for e in entries)
    parts = []
    for entry in entries:
        try:
            re.compile(entry)
            parts.append(f"(?:{entry})")
        except re.error:
            parts.append(re.escape(entry))
    return exact, (re.compile("|".join(parts), re.IGNORECASE) if parts else None)


class PiiCheck(DataCheck):
    name = "pii"
    Settings = PiiSettings

    def __init__(self, settings: PiiSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or PiiSettings()
        enabled: set[str] = set()
        for k in self.settings.kinds:
            enabled.update(GROUPS.get(k, (k,)))
        self.kinds = frozenset(enabled)
        self._exact, self._allow = _compile_allow(self.settings.allow)
        self.counts: Counter[str] = Counter()
        self.samples: dict[str, list[str]] = {}
        self.lines_with_pii = 0
        self.gate = Gate(self.kinds)

    def allowed(self, value: str) -> bool:
        if not self._exact:
            return False
        compact = re.sub(r"[ ().-]", "", value)
        if value.lower() in self._exact or compact.lower() in self._exact:
            return True
        assert self._allow is not None
        return bool(self._allow.fullmatch(value) or self._allow.fullmatch(compact))

    def observe(self, record: Record) -> list[Finding] | None:
        messages = record.messages
        if not messages:
            return None
        kinds = self.gate.line_kinds(record.raw, messages) if record.raw else self.kinds
        if not kinds:
            return None
        out: list[Finding] | None = None
        for index, text in message_texts(messages):
            hits = detect(text, kinds)
            if not hits:
                continue
            by_kind: dict[str, list[str]] = {}
            for kind, value in hits:
                if self._exact and self.allowed(value):
                    continue
                shown = mask(kind, value)
                self.counts[kind] += 1
                samples = self.samples.setdefault(kind, [])
                if len(samples) < MAX_SAMPLES and shown not in samples:
                    samples.append(shown)
                by_kind.setdefault(kind, []).append(shown)
            for kind, masked in by_kind.items():
                out = (out or []) + self._report(record, index, kind, masked)
        if out is not None:
            self.lines_with_pii += 1
        return out

    def _report(self, record: Record, index: int, kind: str, masked: list[str]) -> list[Finding]:
        one, many = LABELS[kind]
        what = one if len(masked) == 1 else f"{len(masked)} {many}"
        shown = ", ".join(masked[:SHOWN_PER_FINDING]) + (" ..." if len(masked) > SHOWN_PER_FINDING else "")
        secret = kind in SECRETS
        hint = ("a leaked credential: revoke it, and remove it from the data" if secret else
                "remove or anonymise it, or list it in validate.pii.allow if it is meant to be there")
        code = f"{'secret' if secret else 'pii'}-{kind.replace('_', '-')}"
        return self.finding("error" if secret else "warning", code, f"messages[{index}] contains {what}: {shown}",
                            record, hint=hint)

    def summary(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "samples": {k: list(v) for k, v in self.samples.items()},
                "lines_with_pii": self.lines_with_pii}

    def part(self) -> "PiiCheck":
        part = self.part_copy()
        part.counts, part.samples, part.lines_with_pii, part.gate = Counter(), {}, 0, Gate(self.kinds)
        return part

    def merge(self, part: DataCheck) -> None:
        """The samples one process keeps: its first distinct ones, so a part's first few suffice."""
        assert isinstance(part, PiiCheck)
        self.counts.update(part.counts)
        for kind, shown in part.samples.items():
            samples = self.samples.setdefault(kind, [])
            samples += [s for s in shown if s not in samples][:MAX_SAMPLES - len(samples)]
        self.lines_with_pii += part.lines_with_pii


ftp_config_sections, ftp_data_checks = check_hooks(PiiCheck)
