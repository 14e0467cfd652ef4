"""Running a pipeline from code: ``run_pipeline`` is what ``ftp run`` calls, and what anything else that
starts runs (a retraining trigger, a notebook, a test) calls instead of copying the CLI."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ftp.config import DEFAULT_BACKEND
from ftp.config.pipeline_file import Pipeline, load_pipeline, resume_overrides
from ftp.errors import UserError
from ftp.hooks import Hooks, default_hooks
from ftp.run.progress import make_reporter
from ftp.run.runner import Runner, check_steps, parse_steps, preflight
from ftp.run.store import RunDir, atomic_write, find_run, runs_root
from ftp.types import Reporter


@dataclass
class Opened:
    """A pipeline file read for a run; ``existing``: the run being resumed, if any."""

    pipeline: Pipeline
    existing: RunDir | None = None


def open_pipeline(path: Path | None, backend: str | None, overrides: Sequence[str], hooks: Hooks, root: Path,
                  resume: str | None, reporter: Reporter) -> Opened:
    """Read the file for a new run, or for ``resume`` with the overrides that run was started with."""
    if resume is None:
        if path is None:
            raise UserError("give a pipeline file (ftp run pipeline.yaml) or --resume RUN_ID")
        return Opened(load_pipeline(path, backend or DEFAULT_BACKEND, hooks.catalog(), tuple(overrides)))
    existing = find_run(root, resume)
    state = existing.state
    if backend and backend != state.backend:
        raise UserError(f"--backend {backend}: run {state.run_id} was started with --backend {state.backend}")
    file = path or Path(state.pipeline_file)
    loaded = load_pipeline(file, state.backend, hooks.catalog(), resume_overrides(state.overrides, tuple(overrides),
                                                                                   state.run_id))
    if loaded.sha256 != state.pipeline_sha256:
        reporter.event("warning", message=f"{file} changed since run {state.run_id} started; "
                                          "steps still to run use the file as it is now")
    return Opened(loaded, existing)


def start(opened: Opened, steps: list[str], hooks: Hooks, root: Path) -> RunDir:
    """Lock the resumed run, or check everything a new run can check and create its directory."""
    loaded = opened.pipeline
    if opened.existing is not None:
        run_dir = opened.existing.lock()
    else:
        check_steps(steps, done=set())  # refuse before a run directory exists
        preflight(loaded, hooks.trainer(loaded.backend))
        run_dir = RunDir.create(root, loaded.settings.name, pipeline_file=str(loaded.path),
                                pipeline_sha256=loaded.sha256, backend=loaded.backend,
                                overrides=loaded.stored_overrides())
    atomic_write(run_dir.path / "pipeline.resolved.yaml", loaded.resolved_yaml())
    return run_dir


def run_pipeline(path: str | Path | None, backend: str | None = None, overrides: Sequence[str] = (),
                 steps: Sequence[str] | None = None, *, resume: str | None = None, runs_dir: str | Path | None = None,
                 reporter: Reporter | None = None, hooks: Hooks | None = None, assume_yes: bool = False) -> RunDir:
    """Run (or resume) a pipeline and return its run directory; raises ``FtpError`` subclasses as the CLI
    does (``UserError``: bad input, exit 2; ``StepFailed``: a step failed, exit 1)."""
    hooks = hooks or default_hooks()
    reporter = reporter or make_reporter("quiet")
    root = runs_root(runs_dir)
    selected = parse_steps(",".join(steps) if steps else None)
    opened = open_pipeline(Path(path) if path is not None else None, backend, overrides, hooks, root, resume, reporter)
    run_dir = start(opened, selected, hooks, root)
    Runner(opened.pipeline, hooks, run_dir, reporter, assume_yes=assume_yes).execute(selected)
    return run_dir
