"""Data files and their findings: what validation, the split and the checks exchange."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from pydantic import ConfigDict, Field

from ftp.config.shorthand import expand_shorthand
from ftp.values.backend import BackendLimits
from ftp.values.base import Example, Severity, Split, Value


def _is_table(file: str) -> bool:
    """Whether findings in ``file`` point at table rows (Parquet, CSV, a save_to_disk folder)."""
    path = Path(file)
    return path.suffix.lower() in (".parquet", ".csv") or path.is_dir()


class Finding(Value):
    """One observation a data validator makes; errors stop the run before compute is spent."""

    severity: Severity
    code: str
    message: str
    file: str | None = None
    line: int | None = None
    hint: str | None = None
    plugin: str | None = None

    def format(self) -> str:
        row = "row " if self.file and _is_table(self.file) else ""  # a table's rows, not its (binary) lines
        where = f"{self.file}:{row}{self.line}: " if self.file and self.line else (f"{self.file}: " if self.file else "")
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}{self.severity}: {self.message}{hint} [{self.code}]"


class DatasetRef(Value):
    """A data file pinned by content, so lineage and caches key on bytes, not on paths.

    Chat JSONL, or a table (Parquet, CSV, a save_to_disk folder) read through ``columns``, the mapping
    from table columns to a chat example; for a table ``sha256`` covers the bytes and the mapping.
    """

    path: Path
    sha256: str
    examples: int
    split: Split | None = None
    columns: dict[str, str] | None = None


class DataBundle(Value):
    """The data files a pipeline names, before or after splitting."""

    train: DatasetRef
    validation: DatasetRef | None = None
    test: DatasetRef | None = None

    def files(self) -> list[DatasetRef]:
        return [d for d in (self.train, self.validation, self.test) if d is not None]


class SplitResult(Value):
    """The three files the rest of the pipeline reads, plus the manifest that records them."""

    train: DatasetRef
    validation: DatasetRef
    test: DatasetRef
    manifest: Path


class CheckContext(Value):
    """What a data check is built with: the effective settings and the files it will see."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    backend: str
    settings: dict[str, Any]
    data: DataBundle
    token_counter: Any = None  # a TokenCounter for the target model, when the backend has one
    limits: BackendLimits = Field(default_factory=BackendLimits)  # the target backend's (its BackendSpec)

    def section(self, name: str) -> dict[str, Any]:
        """This check's ``validate.<name>`` settings as plain data (empty when the file has none)."""
        value = expand_shorthand((self.settings.get("validate") or {}).get(name))
        return dict(value) if isinstance(value, dict) else {}


class TokenCounter(Protocol):
    """Counts tokens of whole examples as the target model will see them (chat template applied)."""

    name: str
    limit: int | None
    exact: bool

    def count(self, examples: Sequence[Example]) -> list[int]: ...
