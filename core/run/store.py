"""Run directories: ``runs/<pipeline>/<run-id>/`` with an atomically written ``state.json``.

State is written before and after every step (write to a temporary file, fsync, rename), so a
crash or Ctrl-C at any moment leaves a file that ``--resume`` can trust.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from ftp.errors import UserError
from ftp.run.lock import STOP_FIRST, WAIT_OR_STOP, RunLock, acquire

STEPS: tuple[str, ...] = ("validate", "split", "train", "review", "evaluate", "gate", "register", "deploy")
Status = Literal["pending", "running", "done", "failed", "interrupted", "skipped"]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` for the block to write (as a stream, or by a library that wants a
    path); moved into place only when the block ends without an error, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; run files are as readable as any other
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write(path: Path, text: str) -> None:
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


class StepState(BaseModel):
    status: Status = "pending"
    started_at: str | None = None
    ended_at: str | None = None
    seconds: float | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class RunState(BaseModel):
    run_id: str
    pipeline_name: str
    pipeline_file: str
    pipeline_sha256: str
    backend: str
    overrides: list[str] = Field(default_factory=list)
    created_at: str
    updated_at: str
    status: Literal["running", "partial", "done", "failed", "interrupted"] = "running"
    steps: dict[str, StepState] = Field(default_factory=lambda: {s: StepState() for s in STEPS})
    # What a backend created outside the run directory (cloud files, a job, deployments), by key. Unlike
    # step outputs it survives a step being re-run, so a resumed run reattaches to the same cloud job and
    # ``ftp runs cancel`` can find it. Written (atomically) before each call that costs money returns.
    resources: dict[str, Any] = Field(default_factory=dict)

    def outputs(self, step: str) -> dict[str, Any]:
        return self.steps[step].outputs


class RunDir:
    """One run's directory and its state file."""

    def __init__(self, path: Path, state: RunState) -> None:
        self.path = path
        self.state = state
        self.held: RunLock | None = None  # this process's lock on the run (run_lock.py), once taken

    def lock(self, purpose: Literal["run", "cancel"] = "run") -> "RunDir":
        """Take the run's lock, so no other process trains, resumes or cancels it meanwhile (exit 2 naming
        the holder if one does), and re-read ``state.json``: the last holder may have changed it since it was loaded.
        """
        self.held = acquire(self.path, self.run_id, STOP_FIRST if purpose == "cancel" else WAIT_OR_STOP)
        self.state = RunDir.load(self.path).state
        return self

    @property
    def run_id(self) -> str:
        return self.state.run_id

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    def save(self) -> None:
        """Write the state; error texts in it are scrubbed of secrets (they may quote a library's message)."""
        from ftp.redact import scrub_tree

        self.state.updated_at = now()
        data = scrub_tree(self.state.model_dump(mode="json"))
        atomic_write(self.path / "state.json", json.dumps(data, indent=2))

    def append_metrics(self, row: dict[str, Any]) -> None:
        with self.metrics_file.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, sort_keys=True) + "\n")

    def drop_metrics(self, phase: str) -> None:
        if not self.metrics_file.exists():
            return
        keep = [line for line in self.metrics_file.read_text(encoding="utf-8").splitlines(keepends=True)
                if json.loads(line).get("phase") != phase]
        atomic_write(self.metrics_file, "".join(keep))

    @classmethod
    def create(cls, runs_root: Path, pipeline_name: str, **fields: Any) -> "RunDir":
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_id = f"{stamp}-{secrets.token_hex(2)}"
        path = runs_root / pipeline_name / run_id
        path.mkdir(parents=True, exist_ok=False)
        held = acquire(path, run_id)  # before state.json exists, so no other command can find the run unlocked
        t = now()
        run = cls(path, RunState(run_id=run_id, pipeline_name=pipeline_name, created_at=t, updated_at=t, **fields))
        run.held = held
        run.save()
        return run

    @classmethod
    def load(cls, path: Path) -> "RunDir":
        try:
            state = RunState.model_validate_json((path / "state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"{path / 'state.json'}: cannot read run state: {exc}") from None
        return cls(path, state)


def list_runs(runs_root: Path) -> list[RunDir]:
    """Every run under ``runs_root``, newest first."""
    runs = []
    for state_file in runs_root.glob("*/*/state.json"):
        try:
            runs.append(RunDir.load(state_file.parent))
        except UserError:
            continue
    return sorted(runs, key=lambda r: r.state.created_at + r.run_id, reverse=True)


def find_run(runs_root: Path, run_id: str) -> RunDir:
    """A run by id (or unique prefix), with an error that lists what exists."""
    matches = [p.parent for p in runs_root.glob(f"*/{run_id}*/state.json")]
    if len(matches) == 1:
        return RunDir.load(matches[0])
    if not matches:
        raise UserError(f"no run {run_id!r} under {runs_root}; `ftp runs list` shows the runs there"
                        " (use --runs-dir or FTP_RUNS_DIR for another folder)")
    raise UserError(f"run id {run_id!r} is ambiguous: {', '.join(sorted(p.name for p in matches))}")


def runs_root(runs_dir: str | Path | None = None) -> Path:
    """Where run directories live: the argument, else ``$FTP_RUNS_DIR``, else ``./runs``."""
    return Path(runs_dir or os.environ.get("FTP_RUNS_DIR") or "runs")
