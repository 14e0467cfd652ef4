"""Where the data came from: the field's advice is never to train on synthetic data alone."""

from __future__ import annotations

from typing import Any

from ftp.data.checks import DataCheck, check_hooks
from ftp.types import CheckContext, Finding


class ProvenanceCheck(DataCheck):
    name = "provenance"

    @classmethod
    def build(cls, context: CheckContext) -> "ProvenanceCheck":
        return cls((context.settings.get("data") or {}).get("provenance"))

    def __init__(self, provenance: str | None) -> None:
        super().__init__()
        self.provenance = provenance

    def finish(self) -> list[Finding]:
        if self.provenance == "synthetic":
            return self.finding("warning", "synthetic-only", "the data is declared synthetic only; models trained on "
                                "synthetic data alone learn its artefacts", hint="mix in human-reviewed examples "
                                "and set data.provenance: mixed")
        if self.provenance is None:
            return self.finding("info", "provenance-unknown", "data.provenance is not declared",
                                hint="set it to human-reviewed, synthetic or mixed; it is recorded in the lineage")
        return []

    def summary(self) -> dict[str, Any]:
        return {"provenance": self.provenance}

    def part(self) -> "ProvenanceCheck":
        return self.part_copy()  # it reads no line

    def merge(self, part: DataCheck) -> None:
        pass


ftp_config_sections, ftp_data_checks = check_hooks(ProvenanceCheck)
