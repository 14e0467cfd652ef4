"""``ftp data check``, ``ftp data split`` and ``ftp advise``: commands on a data file alone.

They run the same checks and split as the pipeline's validate and split steps. ``ftp data restore``
gives back the exact data files of a registered version, from the artifact store.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ftp.config import DEFAULT_BACKEND
from ftp.errors import UserError



def _hooks() -> Any:
    from ftp.hooks import default_hooks

    return default_hooks()


def _existing(path: str | None, option: str) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    if not p.exists():  # a file, or a folder written by datasets' save_to_disk
        raise UserError(f"{option} {path}: file not found")
    return p


def parse_columns(text: str | None) -> dict[str, str] | None:
    """``--columns prompt=question,completion=answer[,system=COL]``: the pipeline file's data.columns."""
    if not text:
        return None
    from pydantic import ValidationError

    from ftp.config.settings import ColumnMapping

    try:
        pairs = dict(part.split("=", 1) for part in text.split(",") if part.strip())
        return ColumnMapping.model_validate({k.strip(): v.strip() for k, v in pairs.items()}).as_dict()
    except (ValueError, ValidationError):
        raise UserError(f"--columns {text}: give prompt=COLUMN,completion=COLUMN and optionally system=COLUMN"
                        ) from None


def run_check(train: Path, validation: Path | None, test: Path | None, model: str | None, backend: str,
              provenance: str | None, disabled: tuple[str, ...] = (), columns: dict[str, str] | None = None,
              workers: int | str | None = None) -> Any:
    from ftp.data.check import check_data
    from ftp.data.sources import bundle as make_bundle

    hooks = _hooks()
    known = set(hooks.backends())
    if backend not in known:
        raise UserError(f"--backend {backend}: unknown; use one of {', '.join(sorted(known))}")
    bundle = make_bundle(train, validation, test, columns)
    settings = {"model": {"base": model} if model else {}, "data": {"provenance": provenance},
                "validate": {name: {"enabled": False} for name in disabled}}
    return check_data(hooks, bundle, settings, backend, workers)


def parse_workers(text: str | None) -> int | str | None:
    """``--workers N|auto``: the processes that read a large file (``validate.hygiene.workers``)."""
    if text is None or text == "auto":
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise UserError(f"--workers {text}: give auto or a number of processes, at least 1")


@click.group()
def data() -> None:
    """Check and split data files without a pipeline file; restore a registered version's data."""


COLUMNS_HELP = "For a Parquet, CSV or save_to_disk table: prompt=COL,completion=COL[,system=COL]."


@data.command("check")
@click.argument("train", type=click.Path())
@click.option("--validation", default=None, help="A validation file (checked, and for leakage from train).")
@click.option("--test", "test_file", default=None, help="A test file (checked, and for leakage from train).")
@click.option("--model", default=None, metavar="PATH_OR_NAME", help="Count tokens with this model's tokenizer.")
@click.option("--backend", "-b", default=DEFAULT_BACKEND, show_default=True, help="Target backend: its limits and rules.")
@click.option("--provenance", type=click.Choice(["human-reviewed", "synthetic", "mixed"]), default=None)
@click.option("--epochs", default=3.0, show_default=True, help="For the training-token and cost estimate.")
@click.option("--price-per-1m-tokens", "price", type=float, default=None,
              help="Training price in USD (default: the backend's, if it declares one; unverified).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--report", "report_file", default=None, metavar="FILE.html", help="Write a self-contained HTML report.")
@click.option("--strict", is_flag=True, help="Exit 1 when there are warnings.")
@click.option("--disable", multiple=True, metavar="CHECK", help="Turn a check off (e.g. --disable pii).")
@click.option("--columns", default=None, metavar="MAPPING", help=COLUMNS_HELP)
@click.option("--workers", default=None, metavar="N|auto", help="Processes that read a large file in byte ranges "
              "(default: auto, one per CPU; 1: one process). The report is the same.")
def data_check(train: str, validation: str | None, test_file: str | None, model: str | None, backend: str,
               provenance: str | None, epochs: float, price: float | None, as_json: bool, report_file: str | None,
               strict: bool, disable: tuple[str, ...], columns: str | None, workers: str | None) -> None:
    """Check a chat JSONL file: format, hygiene, quantity, duplicates, output format, PII, length, leakage.

    Exit 0 when clean, 1 with --strict and warnings, 2 on errors.
    """
    from ftp.data.report import render_html, render_terminal, training_estimate

    report = run_check(_existing(train, "TRAIN") or Path(train), _existing(validation, "--validation"),
                       _existing(test_file, "--test"), model, backend, provenance, disable, parse_columns(columns),
                       parse_workers(workers))
    if price is None:
        spec = _hooks().backends().get(backend)
        price = spec.limits.price_per_1m_tokens if spec else None
    estimate = training_estimate(report, epochs, price)
    if report_file:
        from ftp.run.store import atomic_write

        atomic_write(Path(report_file), render_html(report, estimate))
    if as_json:
        click.echo(json.dumps({**report.to_json(), "training": estimate}, indent=2, default=str))
    else:
        from rich.console import Console

        render_terminal(report, estimate, Console(highlight=False))
        if report_file:
            click.echo(f"\nreport: {report_file}")
    counts = report.counts()
    if counts["error"]:
        sys.exit(2)
    if strict and counts["warning"]:
        sys.exit(1)


@data.command("split")
@click.argument("source", type=click.Path())
@click.option("--out", "out_dir", required=True, metavar="DIR", help="Where train/validation/test.jsonl go.")
@click.option("--ratios", default="0.8,0.1,0.1", show_default=True, help="train,validation,test shares.")
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True)
@click.option("--columns", default=None, metavar="MAPPING", help=COLUMNS_HELP)
def data_split(source: str, out_dir: str, ratios: str, seed: int, as_json: bool, columns: str | None) -> None:
    """Split one file 80/10/10, deterministically; duplicates of an input stay in one split."""
    from ftp.data.files import dataset_ref
    from ftp.config.settings import SplitSettings

    path = _existing(source, "SOURCE")
    assert path is not None
    from pydantic import ValidationError

    try:
        settings = SplitSettings(ratios=tuple(float(x) for x in ratios.split(",")), seed=seed)
    except ValidationError as exc:
        raise UserError(f"--ratios {ratios}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    except ValueError:
        raise UserError(f"--ratios {ratios}: give three numbers, e.g. 0.8,0.1,0.1") from None
    mapping = parse_columns(columns)
    report = run_check(path, None, None, None, DEFAULT_BACKEND, None, columns=mapping)
    if report.counts()["error"]:
        raise UserError(f"{source}: {report.counts()['error']} error(s) in the data; `ftp data check {source}` lists "
                        "them")
    result = _hooks().split(dataset_ref(path, None, mapping), settings.ratios, settings.seed, Path(out_dir))
    if as_json:
        click.echo(result.model_dump_json(indent=2))
        return
    for part in ("train", "validation", "test"):
        ref = getattr(result, part)
        click.echo(f"{part:<10} {ref.examples:>7,}  {ref.path}  sha256 {ref.sha256[:12]}")
    click.echo(f"manifest   {result.manifest}")


@data.command("restore")
@click.argument("ref", metavar="NAME[:VERSION|@ALIAS]")
@click.option("--out", "out_dir", required=True, metavar="DIR", help="Where the files go (a new or empty folder).")
@click.option("--registry", default=None, metavar="PATH", help="Registry file (default: .ftp/registry.db).")
@click.option("--pipeline", "-p", default=None, metavar="FILE", help="Use this pipeline's register.store and artifacts.")
@click.option("--json", "as_json", is_flag=True)
def data_restore(ref: str, out_dir: str, registry: str | None, pipeline: str | None, as_json: bool) -> None:
    """Write the train/validation/test files and manifest.json a registered version was trained on,
    byte-identical (checked against their sha256 before anything is written)."""
    from ftp.cli.storage import open_registry
    from ftp.registry.lineage import restore_data
    from ftp.registry.refs import parse_ref, resolve

    reg, store = open_registry(registry, pipeline)
    version = resolve(reg, parse_ref(ref))
    written = restore_data(version, store, Path(out_dir))
    if as_json:
        click.echo(json.dumps({"name": version.name, "version": version.version,
                               "files": {k: str(p) for k, p in written.items()},
                               "sha256": {k: version.stored[k] for k in written}}))
        return
    for key, path in written.items():
        click.echo(f"{key:<10} {path}  sha256 {version.stored[key][:12]}")
    click.echo(f"restored the data of {version.name}:{version.version} into {out_dir}")


@click.command()
@click.argument("source", type=click.Path())
@click.option("--columns", default=None, metavar="MAPPING", help=COLUMNS_HELP)
@click.option("--validation", default=None, help="The validation file: is it phrased like training or like the test?")
@click.option("--test", "test_file", default=None, help="The test file: are its prompts phrased like training's?")
@click.option("--needs-fresh-knowledge", is_flag=True, help="Answers depend on facts that change.")
@click.option("--needs-citations", is_flag=True, help="Answers must be grounded in checkable sources.")
@click.option("--prompting-tried", is_flag=True, help="Prompting (and few-shot) was tried and fell short.")
@click.option("--rag-tried", is_flag=True, help="RAG was tried and fell short.")
@click.option("--needs-format", is_flag=True, help="A strict, consistent output format is required.")
@click.option("--latency-critical", is_flag=True, help="Latency or cost per call matters.")
@click.option("--broad-task", is_flag=True, help="The task is broad rather than narrow.")
@click.option("--domain-corpus", is_flag=True, help="You have a large unlabelled corpus of a new domain.")
@click.option("--json", "as_json", is_flag=True)
def advise(source: str, columns: str | None, validation: str | None, test_file: str | None, needs_fresh_knowledge: bool,
           needs_citations: bool, prompting_tried: bool, rag_tried: bool, needs_format: bool, latency_critical: bool,
           broad_task: bool, domain_corpus: bool, as_json: bool) -> None:
    """Should you fine-tune? The recommended technique for this data and situation, with reasons, and
    the settings to change when the data calls for it (a small training file; test prompts phrased unlike
    training's)."""
    from ftp.data.advice import advise as decide
    from ftp.data.advice import situation_from, tuning

    path = _existing(source, "SOURCE")
    assert path is not None
    report = run_check(path, _existing(validation, "--validation"), _existing(test_file, "--test"), None,
                       DEFAULT_BACKEND, None, columns=parse_columns(columns))
    situation = situation_from(report, _hooks().training_prices())
    for key, value in dict(needs_fresh_knowledge=needs_fresh_knowledge, needs_citations=needs_citations,
                           prompting_tried=prompting_tried, rag_tried=rag_tried, needs_format=needs_format,
                           latency_critical=latency_critical, narrow_task=not broad_task,
                           domain_corpus=domain_corpus).items():
        setattr(situation, key, value)
    advice = decide(situation)
    # prompting first still ends in fine-tuning when it falls short: the settings advice applies then
    settings = tuning(situation) if advice.fine_tune or advice.technique.startswith("prompting first") else []
    if as_json:
        click.echo(json.dumps({"situation": vars(situation), **advice.to_json(), "settings": settings}, indent=2))
        return
    verdict = "fine-tune" if advice.fine_tune else "do not fine-tune yet"
    click.echo(f"recommended: {advice.technique} ({verdict})")
    for reason in advice.reasons:
        click.echo(f"  - {reason}")
    for label, text in (("data", advice.data_needed), ("cost and time", advice.cost_and_time)):
        if text:
            click.echo(f"{label}: {text}")
    for extra in advice.also:
        click.echo(f"also: {extra}")
    print_tuning(settings)


def print_tuning(lines: list[str], indent: str = "") -> None:
    """The settings advice: one line per setting, the evidence last."""
    if lines:
        click.echo(f"{indent}settings to consider for this data (one line each: the setting, then why):")
    for line in lines:
        click.echo(f"{indent}  - {line}")
