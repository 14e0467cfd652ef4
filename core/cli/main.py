"""The ``ftp`` command. Imports here stay light (click only) so ``ftp --help`` is instant;
each command imports what it needs when it runs.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, NoReturn

import click

from ftp import __version__
from ftp.cli.plugin_commands import PluginCommandsGroup
from ftp.config import DEFAULT_BACKEND
from ftp.errors import FtpError, UserError


def _debug_requested(ctx: click.Context) -> bool:
    return bool(ctx.find_root().meta.get("ftp.debug")) or os.environ.get("FTP_DEBUG", "") not in ("", "0")


class FtpGroup(PluginCommandsGroup):
    """Turns expected errors into one line and an exit code; ``--debug`` adds the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FtpError as exc:
            self.fail(ctx, exc)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)

    def fail(self, ctx: click.Context, exc: FtpError) -> NoReturn:
        from ftp.redact import scrub

        if _debug_requested(ctx):
            click.echo(scrub(traceback.format_exc()), err=True, nl=False)  # called while handling ``exc``
        click.echo(f"error: {scrub(str(exc))}", err=True)
        ctx.exit(exc.exit_code)


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_root().meta["ftp.debug"] = True


debug_option = click.option("--debug", is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
                            help="Show tracebacks for errors.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def _runs_root(runs_dir: str | None) -> Path:
    from ftp.run.store import runs_root

    return runs_root(runs_dir)


runs_dir_option = click.option("--runs-dir", default=None, metavar="DIR",
                               help="Where run directories live (default: ./runs, or $FTP_RUNS_DIR).")


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _hooks() -> Any:
    from ftp.hooks import default_hooks

    return default_hooks()


@click.group(cls=FtpGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ftp")
@click.option("--plugin", "plugin_files", multiple=True, metavar="FILE.py",
              help="Load a project-local plugin module, as a pipeline file's plugins: key does (for ftp data check).")
@debug_option
def cli(plugin_files: tuple[str, ...]) -> None:
    """ftp: one fine-tuning pipeline file, run locally (LoRA/QLoRA) or on Azure AI Foundry.

    \b
    Start with:  ftp run examples/quickstart/pipeline.yaml --backend local
    """
    from ftp.run.lock import release_all

    click.get_current_context().call_on_close(release_all)  # a run's lock (run_lock.py) lasts one command
    if plugin_files:
        from ftp.config.local_plugins import register_from_option
        from ftp.plugin_manager import get_plugin_manager

        register_from_option(get_plugin_manager(), plugin_files)


# --- run --------------------------------------------------------------------------------------------


@cli.command()
@click.argument("pipeline", required=False, type=click.Path(dir_okay=False))
@click.option("--backend", "-b", default=None, help="Backend to run on (default: local). `ftp plugins` lists them.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a setting, e.g. train.epochs=1.")
@click.option("--steps", default=None, metavar="A,B", help="Run only these steps, e.g. validate,split,train.")
@click.option("--resume", "resume_id", default=None, metavar="RUN_ID", help="Continue a run; done steps are skipped.")
@click.option("--dry-run", is_flag=True, help="Show the plan (plugins per step, resolved settings) and exit.")
@click.option("--yes", "-y", "assume_yes", is_flag=True, help="Submit paid cloud work without asking (the cost is still shown).")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable events, one JSON object per line.")
@runs_dir_option
@debug_option
def run(pipeline: str | None, backend: str | None, overrides: tuple[str, ...], steps: str | None,
        resume_id: str | None, dry_run: bool, assume_yes: bool, quiet: bool, as_json: bool,
        runs_dir: str | None) -> None:
    """Run a pipeline: validate, split, train, review, evaluate, gate, register, deploy."""
    from ftp.run.pipeline import open_pipeline, run_pipeline
    from ftp.run.progress import make_reporter
    from ftp.run.runner import parse_steps

    reporter = make_reporter("json" if as_json else "quiet" if quiet else "rich")
    selected = parse_steps(steps)
    hooks = _hooks()
    if dry_run:
        from ftp.run.plan import describe_plan

        opened = open_pipeline(Path(pipeline) if pipeline else None, backend, overrides, hooks,
                               _runs_root(runs_dir), resume_id, reporter)
        describe_plan(opened.pipeline, hooks, selected, as_json)
        return
    run_pipeline(pipeline, backend, overrides, selected, resume=resume_id, runs_dir=_runs_root(runs_dir),
                 reporter=reporter, hooks=hooks, assume_yes=assume_yes)


# --- validate ---------------------------------------------------------------------------------------


@cli.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option("--backend", "-b", default=DEFAULT_BACKEND, show_default=True, help="Backend whose overrides apply.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a setting.")
@json_option
@debug_option
def validate(pipeline: str, backend: str, overrides: tuple[str, ...], as_json: bool) -> None:
    """Check a pipeline file and its data without training. Exit 2 on errors."""
    from ftp.config.pipeline_file import load_pipeline
    from ftp.run.progress import make_reporter
    from ftp.data.check import check_data
    from ftp.run.runner import data_bundle, preflight, report_findings

    hooks = _hooks()
    loaded = load_pipeline(Path(pipeline), backend, hooks.catalog(), overrides)
    ignored = preflight(loaded, hooks.trainer(backend))
    bundle = data_bundle(loaded.settings)
    findings = check_data(hooks, bundle, loaded.as_dict(), backend).sorted_findings()
    errors = sum(f.severity == "error" for f in findings)
    if as_json:
        _emit_json({"pipeline": str(loaded.path), "backend": backend, "examples": bundle.train.examples,
                    "errors": errors, "findings": [f.model_dump(mode="json") for f in findings],
                    "settings_warnings": ignored})
    else:
        for warning in ignored:
            click.echo(f"warning: {warning}", err=True)
        report_findings(findings, make_reporter("rich"), limit=50)
        click.echo(f"{pipeline}: pipeline OK; data: {bundle.train.examples} training examples, {errors} error(s), "
                   f"{sum(f.severity == 'warning' for f in findings)} warning(s)")
    if errors:
        sys.exit(2)


# --- plugins ----------------------------------------------------------------------------------------


@cli.command()
@json_option
@debug_option
def plugins(as_json: bool) -> None:
    """List plugins (built-in and installed), their versions and the hooks each implements."""
    from ftp.plugin_manager import get_plugin_infos, get_plugin_manager, plugin_table

    table = plugin_table(get_plugin_manager(), get_plugin_infos())
    if as_json:
        _emit_json([vars(p) for p in table])
        return
    from rich.console import Console
    from rich.table import Table

    t = Table("plugin", "version", "kind", "hooks")
    for p in table:
        t.add_row(p.name, p.version, "built-in" if p.builtin else (p.distribution or "installed"), ", ".join(p.hooks))
    Console().print(t)


# --- runs -------------------------------------------------------------------------------------------


@cli.group()
def runs() -> None:
    """Inspect run directories."""


@runs.command("list")
@runs_dir_option
@json_option
@debug_option
def runs_list(runs_dir: str | None, as_json: bool) -> None:
    """List runs, newest first."""
    from ftp.run.store import list_runs

    found = list_runs(_runs_root(runs_dir))
    rows: list[dict[str, Any]] = [{"run_id": r.run_id, "pipeline": r.state.pipeline_name, "backend": r.state.backend,
             "status": r.state.status, "created_at": r.state.created_at,
             "steps_done": [s for s, st in r.state.steps.items() if st.status == "done"], "path": str(r.path)}
            for r in found]
    if as_json:
        _emit_json(rows)
        return
    if not rows:
        click.echo(f"no runs under {_runs_root(runs_dir)}")
        return
    _table(["run id", "pipeline", "backend", "status", "created", "steps done"],
           [[r["run_id"], r["pipeline"], r["backend"], r["status"], r["created_at"][:16].replace("T", " "),
             f"{len(r['steps_done'])}/8"] for r in rows])


@runs.command("show")
@click.argument("run_id")
@runs_dir_option
@json_option
@debug_option
def runs_show(run_id: str, runs_dir: str | None, as_json: bool) -> None:
    """Show one run: its steps, their status and outputs."""
    from ftp.run.store import find_run

    found = find_run(_runs_root(runs_dir), run_id)
    if as_json:
        _emit_json({"path": str(found.path), **found.state.model_dump(mode="json")})
        return
    s = found.state
    click.echo(f"run {s.run_id}  pipeline {s.pipeline_name}  backend {s.backend}  status {s.status}")
    click.echo(f"path {found.path}")
    _table(["step", "status", "seconds", "detail"],
           [[name, st.status, f"{st.seconds:.1f}" if st.seconds is not None else "", st.error or _brief(st.outputs)]
            for name, st in s.steps.items()])
    for key, value in s.resources.items():  # what the run created outside its folder (cloud job, files)
        click.echo(f"{key}: {json.dumps(value, default=str)}")


@runs.command("cancel")
@click.argument("run_id")
@runs_dir_option
@debug_option
def runs_cancel(run_id: str, runs_dir: str | None) -> None:
    """Cancel the cloud job a run started (Azure); a local run is stopped with Ctrl-C instead."""
    from ftp.config.pipeline_file import load_pipeline, unmasked_overrides
    from ftp.run.progress import make_reporter
    from ftp.run.store import find_run
    from ftp.run.context import RunContext
    from ftp.types import Cancellable

    found = find_run(_runs_root(runs_dir), run_id).lock("cancel")
    state = found.state
    hooks = _hooks()
    trainer = hooks.trainer(state.backend)
    if not isinstance(trainer, Cancellable):
        raise UserError(f"run {state.run_id} uses backend {state.backend!r}, which runs no cloud job; "
                        "stop a running local run with Ctrl-C")
    loaded = load_pipeline(Path(state.pipeline_file), state.backend, hooks.catalog(),
                           unmasked_overrides(state.overrides))  # a secret given with --set is not needed to cancel
    message = trainer.cancel(RunContext(found, loaded, make_reporter("quiet"), hooks))
    train = state.steps["train"]
    if train.status != "done":
        train.status, train.error = "failed", f"cancelled with ftp runs cancel: {message}"
        state.status = "failed"
        found.save()
    click.echo(message)


def _brief(outputs: dict[str, Any]) -> str:
    for key in ("report", "checks", "version", "slot", "examples"):
        if key in outputs:
            value = outputs[key]
            return json.dumps(value.get("metrics", value) if isinstance(value, dict) else value, default=str)[:100]
    return ""


def _table(headers: list[str], rows: list[list[str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(*headers)
    t.columns[0].no_wrap = True  # ids are copied into other commands: never cut them
    t.columns[0].min_width = max((len(str(r[0])) for r in rows), default=0)
    for row in rows:
        t.add_row(*[str(c) for c in row])
    Console().print(t)


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="ftp")


def _register_data_commands() -> None:
    from ftp.cli.data import advise, data
    from ftp.cli.deploy import deploy
    from ftp.cli.evaluate import eval_command
    from ftp.cli.model import export, plan
    from ftp.cli.models import models
    from ftp.cli.monitor import feedback, monitor, retrain_command
    from ftp.cli.review import review
    from ftp.cli.serve import serve
    from ftp.cli.storage import gc, runs_rm

    for command in (data, advise, plan, export, eval_command, review, models, gc, serve, deploy, monitor, feedback,
                    retrain_command):
        cli.add_command(command)
    runs.add_command(runs_rm)


_register_data_commands()
