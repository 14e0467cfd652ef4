"""What a hook may use of the run it is called in: the reporter and the step context (in memory only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Reporter(Protocol):
    """Where plugins send progress; the CLI renders it as rich output, JSON lines or nothing."""

    def event(self, kind: str, **data: Any) -> None: ...

    def progress(self, description: str, total: int) -> "ProgressTask": ...


class ProgressTask(Protocol):
    def update(self, completed: int, **fields: Any) -> None: ...

    def close(self) -> None: ...


class StepContext(Protocol):
    """The runner's services a plugin may use during a step (read-only: the runner owns the run)."""

    @property
    def run_id(self) -> str: ...

    @property
    def run_dir(self) -> Path: ...

    @property
    def reporter(self) -> Reporter: ...

    @property
    def backend_settings(self) -> dict[str, Any]: ...

    def log_metrics(self, row: dict[str, Any]) -> None: ...

    def setting(self, path: str) -> Any: ...

    def confirm(self, question: str) -> bool:
        """Ask the user before spending money; True at once under ``--yes``, False when nobody can answer."""

    def resource(self, key: str) -> Any:
        """What ``record_resource`` stored under ``key`` in this run (also in an earlier attempt), or None."""

    def record_resource(self, key: str, value: Any) -> None:
        """Remember a cloud resource (job id, file ids) in ``state.json`` now, before anything else happens."""
