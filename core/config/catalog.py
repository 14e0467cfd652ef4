"""What plugins declared, which reading a pipeline file checks names against; apart from the loader
(``pipeline_file``) and the local-plugin registration (``local_plugins``), which both use it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftp.types import BackendSpec, ConfigSection, MetricSpec

LocalEntry = tuple[str, Path, dict[str, Any]]  # the file as written, the folder it is relative to, where errors point


@dataclass
class Catalog:
    """What plugins declared, which the schema needs to check names against."""

    backends: dict[str, BackendSpec] = field(default_factory=dict)
    sections: list[ConfigSection] = field(default_factory=list)
    metrics: dict[str, MetricSpec] = field(default_factory=dict)
    local_plugins: Callable[[list[LocalEntry]], Catalog] | None = None  # registers a file's plugins: and re-reads
