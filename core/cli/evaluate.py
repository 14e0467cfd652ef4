"""``ftp eval MODEL --data test.jsonl``: evaluate any model on any test file, with the report a run writes."""

from __future__ import annotations

import json
import os
import time
from functools import partial
from pathlib import Path
from typing import Any

import click

from ftp.errors import UserError


def _candidates(text: str) -> list[str]:
    wanted = [c.strip() for c in text.split(",") if c.strip() and c.strip() != "none"]
    for c in wanted:
        if c not in ("base", "champion"):
            raise UserError(f"--compare {text}: unknown candidate {c!r}; give base, champion or none")
    return wanted


def _settings(pipeline: str | None, backend: str | None, overrides: tuple[str, ...], hooks: Any, base: str) -> Any:
    """The pipeline file's settings when one is given, else the defaults (with the model's base)."""
    from ftp.config import DEFAULT_BACKEND
    from ftp.config.settings import PipelineSettings

    if pipeline is None:
        if overrides:
            raise UserError("--set needs --pipeline: the overrides apply to a pipeline file's settings")
        return None, PipelineSettings.model_validate({"name": "eval", "model": {"base": base}}), {}
    from ftp.config.pipeline_file import load_pipeline

    loaded = load_pipeline(pipeline, backend or DEFAULT_BACKEND, hooks.catalog(), overrides)
    return loaded, loaded.settings, loaded.backend_settings


def _test_examples(path: Path, limit: int | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from ftp.data.files import dataset_ref
    from ftp.data.sources import read_examples

    if not path.exists():
        raise UserError(f"--data {path}: file not found")
    ref = dataset_ref(path)
    examples = read_examples(ref)[:limit]
    for number, ex in enumerate(examples, 1):
        messages = ex.get("messages") if isinstance(ex, dict) else None
        if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict) \
                or messages[-1].get("role") != "assistant":
            raise UserError(f"{path}:{number}: the last message must be the assistant's answer (the reference); "
                            f"ftp data check {path} lists every problem")
    if not examples:
        raise UserError(f"--data {path}: no examples")
    return examples, {"path": str(path.resolve()), "sha256": ref.sha256, "examples": len(examples)}


@click.command("eval")
@click.argument("ref", metavar="MODEL")
@click.option("--data", "data_path", required=True, metavar="FILE", help="Test examples (chat JSONL).")
@click.option("--compare", "compare", default="base", show_default=True, metavar="LIST",
              help="Candidates to compare with: base, champion (the live version), none.")
@click.option("--report", "report_dir", default=None, metavar="DIR",
              help="Where eval.json, eval.html and eval/examples.jsonl go (default: ftp-eval/MODEL-TIME).")
@click.option("--pipeline", default=None, metavar="FILE", help="Take evaluate:, model: and backend settings from it.")
@click.option("--backend", "-b", default=None, help="Backend whose overrides apply (with --pipeline).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a setting (with --pipeline).")
@click.option("--metrics", default=None, metavar="LIST", help="Metric names (default: chosen from the answers).")
@click.option("--max-examples", type=int, default=None, help="Evaluate only the first N examples.")
@click.option("--registry", default=None, metavar="PATH", help="Registry file (default .ftp/registry.db).")
@click.option("--runs-dir", default=None, metavar="DIR")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics and comparisons as JSON.")
def eval_command(ref: str, data_path: str, compare: str, report_dir: str | None, pipeline: str | None,
                 backend: str | None, overrides: tuple[str, ...], metrics: str | None, max_examples: int | None,
                 registry: str | None, runs_dir: str | None, as_json: bool) -> None:
    """Evaluate MODEL (NAME, NAME:3, NAME@alias, a run id, a model folder, or deployment:NAME of the
    pipeline's backend) on a test file: the task's metrics for it and each candidate, paired intervals,
    eval.json and eval.html."""
    from ftp.hooks import default_hooks
    from ftp.run.progress import make_reporter
    from ftp.run.store import runs_root

    wanted = _candidates(compare)
    hooks = default_hooks()
    reporter = make_reporter("quiet" if as_json else "rich")
    loaded, settings, backend_settings = _settings(pipeline, backend, overrides, hooks, "")
    store = Path(registry) if registry else settings.registration.location() if loaded else Path(".ftp/registry.db")
    from ftp.eval.standalone import named_model

    named = named_model(ref, runs_root(runs_dir or os.environ.get("FTP_RUNS_DIR")), store, hooks,
                        loaded.backend if loaded else None, str(settings.model.base or "") if loaded else None,
                        settings.registration.registry if loaded else "sqlite")
    if loaded is None:
        _, settings, backend_settings = _settings(None, None, (), hooks, named.model.base)
    ev = settings.evaluate.model_copy(update={"compare_to": wanted, **(
        {"metrics": [m.strip() for m in metrics.split(",") if m.strip()]} if metrics else {})})
    known = hooks.metrics()
    for m in ev.metrics or []:
        if m not in known:
            from ftp.config.check import suggest

            raise UserError(f"--metrics: unknown metric {m!r}; " + (suggest(m, sorted(known)) or f"known: {', '.join(sorted(known))}"))
    examples, data = _test_examples(Path(data_path), max_examples)
    folder = Path(report_dir) if report_dir else Path("ftp-eval") / f"{Path(ref).name.replace(':', '-').replace('@', '-')}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=True)
    outcome = _run(named, examples, data, ev, settings, backend_settings, loaded, hooks, reporter, folder)
    if as_json:
        click.echo(json.dumps({"report": str(folder / "eval.json"), "html": str(folder / "eval.html"),
                               "metrics": outcome.report.metrics,
                               "comparisons": [c.model_dump(mode="json") for c in outcome.report.comparisons],
                               "not_evaluated": outcome.skipped}))
        return
    from ftp.eval.answers import format_report

    click.echo(format_report(outcome.report))
    for label, why in outcome.skipped.items():
        click.echo(f"{label}: not evaluated: {why}")
    click.echo(f"report: {folder / 'eval.html'} ({folder / 'eval.json'})")


def _run(named: Any, examples: list[dict[str, Any]], data: dict[str, Any], ev: Any, settings: Any,
         backend_settings: dict[str, Any], loaded: Any, hooks: Any, reporter: Any, folder: Path) -> Any:
    from ftp.eval.session import EvalSpec, evaluate
    from ftp.eval.standalone import EvalContext, Predictors
    from ftp.types import ModelRef

    ctx = EvalContext(folder, settings, backend_settings, reporter)
    predictors = Predictors(hooks, ctx)
    model = named.model
    found: dict[str, ModelRef] = {"fine-tuned": model}
    missing: dict[str, str] = {}
    if "base" in ev.compare_to:
        found["base"] = ModelRef(kind="base", base=model.base, backend=model.backend)
    if "champion" in ev.compare_to:
        from ftp.eval.standalone import champion_of

        name = named.name or settings.registration.name or (settings.name if loaded else None)
        registry = hooks.model_registry(settings.registration.registry, settings.registration.location())
        version, why = champion_of(registry, name, settings.deploy.store) if name else (
            None, "the model has no registry name; give NAME:VERSION or --pipeline")
        if version is None:
            missing["champion"] = why
        elif version.version == named.version:
            missing["champion"] = f"{name} v{version.version} is itself the champion"
        else:
            found["champion"] = version.model
    loaders = {label: (m, partial(predictors.load, label, m)) for label, m in found.items()}
    spec = EvalSpec(settings=ev, pipeline=(loaded.as_dict() if loaded else settings.model_dump(mode="json", by_alias=True)),
                    seed=ev.seed if ev.seed is not None else settings.train.seed,
                    confidence=settings.gate.confidence or ev.confidence, gated=list(settings.gate.rules()), data=data)
    return evaluate(examples, loaders, spec, hooks, reporter, folder, missing)
