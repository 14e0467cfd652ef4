"""Progress for people (rich), for scripts (``--json``: one JSON event per line) or nobody (``--quiet``).

Every event also goes to the ``ftp.run`` logger, which the runner points at ``run.log``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from rich.markup import escape

log = logging.getLogger("ftp.run")

_ICONS = {"done": "[green]✓[/]", "failed": "[red]✗[/]", "interrupted": "[yellow]■[/]", "skipped": "[dim]-[/]",
          "pending": "[dim]·[/]", "running": "[cyan]▶[/]"}


def _log_event(kind: str, data: dict[str, Any]) -> None:
    log.info("%s %s", kind, json.dumps(data, default=str, sort_keys=True))


class _NullTask:
    def update(self, completed: int, **fields: Any) -> None:
        pass

    def close(self) -> None:
        pass


class QuietReporter:
    """Prints nothing; errors still reach stderr through the CLI."""

    def event(self, kind: str, **data: Any) -> None:
        """Log the event and show it; no secret reaches the screen or run.log, whatever a step put in it."""
        from ftp.redact import scrub_tree

        data = scrub_tree(data)
        _log_event(kind, data)
        self.show(kind, data)

    def show(self, kind: str, data: dict[str, Any]) -> None:
        """Display one event (already scrubbed of secrets)."""

    def progress(self, description: str, total: int) -> Any:
        return _NullTask()


class JsonReporter(QuietReporter):
    """One JSON object per line on stdout: ``{"event": ..., "time": ..., ...}``."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout

    def show(self, kind: str, data: dict[str, Any]) -> None:
        self.stream.write(json.dumps({"event": kind, "time": round(time.time(), 3), **data}, default=str) + "\n")
        self.stream.flush()

    def progress(self, description: str, total: int) -> Any:
        reporter = self

        class Task(_NullTask):
            def update(self, completed: int, **fields: Any) -> None:
                reporter.event("progress", task=description, completed=completed, total=total, **fields)

        return Task()


class _RichTask:
    def __init__(self, console: Any, description: str, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=console,
                                 transient=False)
        self.task = self.progress.add_task(description, total=total, info="")
        self.progress.start()

    def update(self, completed: int, **fields: Any) -> None:
        info = "  ".join(f"{k} {_fmt(v)}" for k, v in fields.items() if v is not None)
        self.progress.update(self.task, completed=completed, info=info)

    def close(self) -> None:
        self.progress.stop()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4g}"
    return str(value)


class RichReporter(QuietReporter):
    """The step list with status, and a bar for long work (training, generation)."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(highlight=False)

    def show(self, kind: str, data: dict[str, Any]) -> None:
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(**data)
        elif "message" in data:
            self.console.print(f"  {data['message']}", markup=False)

    def progress(self, description: str, total: int) -> Any:
        return _RichTask(self.console, description, total)

    def _on_run_started(self, run_id: str, run_dir: str, backend: str, steps: dict[str, str], **_: Any) -> None:
        self.console.print(f"[bold]ftp run[/] {run_id}  backend [bold]{backend}[/]  → {run_dir}")
        for step, status in steps.items():
            self.console.print(f"  {_ICONS.get(status, ' ')} {step} [dim]{status}[/]")

    def _on_step_started(self, step: str, **_: Any) -> None:
        self.console.print(f"{_ICONS['running']} [bold]{step}[/]")

    def _on_step_done(self, step: str, seconds: float, summary: str = "", **_: Any) -> None:
        self.console.print(f"{_ICONS['done']} [bold]{step}[/] [dim]{seconds:.1f}s[/] {escape(summary)}")

    def _on_step_skipped(self, step: str, reason: str, **_: Any) -> None:
        self.console.print(f"{_ICONS['skipped']} {step} [dim]{reason}[/]")

    def _on_step_failed(self, step: str, error: str, status: str = "failed", **_: Any) -> None:
        self.console.print(f"{_ICONS.get(status, _ICONS['failed'])} [bold]{step}[/] {status}: {escape(error)}")

    def _on_finding(self, text: str, severity: str, **_: Any) -> None:
        colour = {"error": "red", "warning": "yellow"}.get(severity, "dim")
        self.console.print(f"  [{colour}]{escape(text)}[/]", markup=True, soft_wrap=True)

    def _on_handed_off(self, step: str, message: str, **_: Any) -> None:
        self.console.print(f"[dim]{escape(message)}[/]")

    def _on_run_finished(self, status: str, run_id: str, **_: Any) -> None:
        colour = {"done": "green", "interrupted": "yellow"}.get(status, "red")
        self.console.print(f"[{colour}]run {run_id} {status}[/]")


def make_reporter(mode: str) -> QuietReporter:
    return {"json": JsonReporter, "quiet": QuietReporter}.get(mode, RichReporter)()
