"""``ftp plan`` (memory before training) and ``ftp export`` (a trained model for serving elsewhere)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ftp.config import DEFAULT_BACKEND
from ftp.errors import UserError


def _hooks() -> Any:
    from ftp.hooks import default_hooks

    return default_hooks()


def train_request(loaded: Any, output_dir: Path) -> Any:
    """The request training would get, before any split (the whole training file stands in)."""
    from ftp.data.files import dataset_ref
    from ftp.data.table_files import is_table
    from ftp.run.runner import train_request as request_for

    train, columns = loaded.settings.data.train, loaded.settings.data.columns
    mapping = columns.as_dict() if columns is not None and is_table(train) else None
    return request_for(loaded, dataset_ref(train, "train", mapping), None, output_dir)


def print_plan(plan: Any) -> None:
    for part, gib in plan.parts_gib.items():
        click.echo(f"  {part:<22} {gib:8.2f} GiB")
    device = f"{plan.device}" + (f" ({plan.device_gib:.1f} GiB)" if plan.device_gib else "")
    verdict = {True: "fits", False: "does NOT fit", None: "fit unknown"}[plan.fits]
    click.echo(f"  {'predicted peak':<22} {plan.total_gib:8.2f} GiB on {device}: {verdict}")
    if plan.basis:
        click.echo(f"  (for {plan.basis}" + (f"; every example at max_seq_length: {plan.worst_case_gib:.2f} GiB)"
                                            if plan.worst_case_gib is not None else ")"))
    for tip in plan.suggestions:
        click.echo(f"  - {tip}")


@click.command()
@click.argument("pipeline", type=click.Path(dir_okay=False))
@click.option("--backend", "-b", default=DEFAULT_BACKEND, show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
@click.option("--json", "as_json", is_flag=True)
def plan(pipeline: str, backend: str, overrides: tuple[str, ...], as_json: bool) -> None:
    """Predict peak memory for the pipeline's training, and whether it fits this machine."""
    from ftp.config.pipeline_file import load_pipeline
    from ftp.run.runner import preflight

    hooks = _hooks()
    loaded = load_pipeline(Path(pipeline), backend, hooks.catalog(), overrides)
    trainer = hooks.trainer(backend)
    preflight(loaded, trainer)
    result = trainer.plan(train_request(loaded, Path("runs") / "plan"))
    if result is None:
        raise UserError(f"backend {backend!r} does not plan memory (its training does not run on this machine)")
    if as_json:
        click.echo(result.model_dump_json(indent=2))
        return
    click.echo(f"memory plan for {pipeline} ({loaded.settings.train.method} on {loaded.settings.model.base}):")
    print_plan(result)
    from ftp.cli.data import print_tuning

    print_tuning(data_tuning(hooks, loaded), indent="  ")


CHECKS_FOR_TUNING = ("quantity", "phrasing")  # what the settings advice reads; plan runs only these


def data_tuning(hooks: Any, loaded: Any) -> list[str]:
    """The settings advice for the pipeline's data (``ftp.data.advice.tuning``), from a scan by the two
    checks it reads; with one data file, the training split is its ``data.split.ratios`` share."""
    from ftp.data.advice import situation_from, tuning
    from ftp.data.check import check_data
    from ftp.run.runner import data_bundle

    bundle = data_bundle(loaded.settings)
    settings = loaded.as_dict()
    validate = dict(settings.get("validate") or {})
    for section in hooks.config_sections():
        name = section.path.removeprefix("validate.")
        if section.path.startswith("validate.") and "." not in name and name not in CHECKS_FOR_TUNING:
            validate[name] = {"enabled": False}
    report = check_data(hooks, bundle, {**settings, "validate": validate}, loaded.backend)
    situation = situation_from(report)
    if bundle.validation is None or bundle.test is None:
        situation.examples = int(situation.examples * loaded.settings.data.split.ratios[0])
    return tuning(situation)


def resolve_model(ref: str, runs_dir: Path, registry: str | None, pipeline: str | None = None) -> Any:
    """A run id (or prefix), or NAME:VERSION / NAME@ALIAS from the registry (``--registry``, else the
    pipeline's), as a ModelRef."""
    from ftp.registry.refs import parse_ref, resolve
    from ftp.run.store import find_run
    from ftp.types import TrainResult

    if ":" in ref or "@" in ref:
        from ftp.cli.storage import open_registry

        return resolve(open_registry(registry, pipeline)[0], parse_ref(ref)).model
    run = find_run(runs_dir, ref)
    outputs = run.state.outputs("train")
    if not outputs:
        raise UserError(f"run {run.run_id} has not finished training; nothing to export")
    return TrainResult.model_validate(outputs).model


@click.command()
@click.argument("ref", metavar="RUN_ID|NAME:VERSION")
@click.option("--out", "out_dir", required=True, metavar="DIR", help="Where to write the model (must not exist).")
@click.option("--merge", is_flag=True, help="Merge the adapter into the base model: a plain transformers model.")
@click.option("--runs-dir", default=None, metavar="DIR")
@click.option("--registry", default=None, metavar="PATH", help="Registry file for NAME:VERSION (.ftp/registry.db).")
@click.option("--pipeline", "-p", default=None, metavar="FILE", help="Use this pipeline's registry (register.*).")
@click.option("--json", "as_json", is_flag=True)
def export(ref: str, out_dir: str, merge: bool, runs_dir: str | None, registry: str | None, pipeline: str | None,
           as_json: bool) -> None:
    """Export a trained model: the PEFT adapter, or with --merge a merged safetensors model."""
    import os

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out_dir}: the folder exists and is not empty; choose a new one")
    model = resolve_model(ref, Path(runs_dir or os.environ.get("FTP_RUNS_DIR") or "runs"), registry, pipeline)
    written = _hooks().trainer(model.backend).export(model, out, merge)
    if as_json:
        click.echo(json.dumps({"path": str(written), "merged": merge, "model": model.model_dump(mode="json")}))
    else:
        click.echo(f"{'merged model' if merge else 'adapter'} written to {written}")
