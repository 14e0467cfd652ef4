"""``ftp review export`` / ``ftp review import``: blind side-by-side review of a run's answers by people.

The sheet logic is ``ftp.eval.review_sheet``; this module finds the report folder (a run by id, or a
folder ``ftp eval --report`` wrote), its seed and its registry, and writes the result where it belongs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ftp.errors import UserError

TAG = "human_review"


def _locate(run_id: str, runs_dir: str | None) -> tuple[Path, Any]:
    """(report folder, RunDir or None): RUN_ID names a run, or is a report folder's path."""
    from ftp.run.store import RunDir, find_run, runs_root

    path = Path(run_id)
    if path.is_dir() and (path / "state.json").exists():
        return path, RunDir.load(path)
    if path.is_dir() and ((path / "eval.json").exists() or (path / "eval").is_dir()):
        return path, None
    found = find_run(runs_root(runs_dir), run_id)
    return found.path, found


def _eval_json(folder: Path, required: bool) -> dict[str, Any]:
    path = folder / "eval.json"
    if not path.exists():
        if required:
            raise UserError(f"{folder} has no eval.json: run the evaluate step first "
                            "(ftp run --resume RUN_ID --steps evaluate)")
        return {}
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except ValueError as exc:
        raise UserError(f"{path}: not JSON ({exc}); re-run the evaluate step") from None


def _resolved(folder: Path) -> dict[str, Any]:
    """The run's effective settings (``pipeline.resolved.yaml``), or nothing outside a run."""
    import yaml

    path = folder / "pipeline.resolved.yaml"
    return dict(yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.exists() else {}


def default_seed(folder: Path) -> int:
    """The run's evaluate seed (as ``eval.json`` recorded it, else the resolved settings), else 0."""
    seed = _eval_json(folder, required=False).get("seed")
    if seed is None:
        settings = _resolved(folder)
        seed = (settings.get("evaluate") or {}).get("seed") or (settings.get("train") or {}).get("seed")
    return int(seed) if isinstance(seed, int) else 0


def _tag_registry(folder: Path, run: Any, value: dict[str, Any]) -> str | None:
    """Set the registered version's ``human_review`` tag; ``None`` when the run registered none."""
    if run is None:
        return None
    outputs = run.state.steps["register"].outputs if "register" in run.state.steps else {}
    if not outputs.get("name") or outputs.get("version") is None:
        return None
    from ftp.hooks import default_hooks

    register = _resolved(folder).get("register") or {}
    store = Path(register.get("store") or ".ftp/registry.db")
    if not store.is_absolute():
        store = Path(run.state.pipeline_file).parent / store
    uri = register.get("tracking_uri")  # an MLflow server, when the file names one
    kind = str(register.get("kind") or register.get("registry") or "sqlite")
    registry = default_hooks().model_registry(kind, Path(uri) if uri else store)
    if not hasattr(registry, "set_tag"):
        raise UserError(f"human review written to {folder / 'eval.json'}, but the {registry.name} registry "
                        "cannot set tags (its plugin has no set_tag)")
    registry.set_tag(outputs["name"], int(outputs["version"]), TAG, value)
    return f"{outputs['name']} v{outputs['version']} in {registry.location}"


def _line(label: str, entry: dict[str, Any], review: dict[str, Any]) -> str:
    if entry["win_rate"] is None:
        rate = "no win rate (no row preferred a side or tied)"
    else:
        rate = (f"win rate {entry['win_rate']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}] "
                f"({review['confidence']:.0%}, bootstrap)")
    return (f"{label}: {review['candidate']} vs {review['baseline']} {rate}, {entry['wins']} wins, "
            f"{entry['losses']} losses, {entry['ties']} ties, {entry['both_bad']} both bad, n={entry['n']}"
            + (" (under 20 examples: read the interval as rough)" if entry["examples"] < 20 else ""))


@click.group()
def review() -> None:
    """Blind side-by-side review of a run's answers by people: export a sheet, import the choices."""


@review.command("export")
@click.argument("run_id")
@click.option("--out", "out_dir", required=True, metavar="DIR", help="Folder for the sheet (send it to reviewers).")
@click.option("--candidates", default="fine-tuned,base", show_default=True, metavar="A,B",
              help="The two candidates; the win rate is A's against B.")
@click.option("--seed", type=int, default=None, help="Seed of the sides (default: the run's evaluate seed, else 0).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N test examples.")
@click.option("--force", is_flag=True, help="Replace a mapping made with another seed or other candidates.")
@click.option("--runs-dir", default=None, metavar="DIR", help="Where run directories live (default: ./runs).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def export_command(run_id: str, out_dir: str, candidates: str, seed: int | None, limit: int | None, force: bool,
                   runs_dir: str | None, as_json: bool) -> None:
    """Write a blind review sheet of a run's answers.

    DIR gets review.html, review.csv, label_studio.json/.xml and argilla.json; which candidate is which
    stays in RUN/review/mapping.json. RUN_ID may also be a folder that ftp eval --report wrote."""
    from ftp.eval.review_sheet import export_sheet

    folder, _run = _locate(run_id, runs_dir)
    pair = [c.strip() for c in candidates.split(",") if c.strip()]
    if len(pair) != 2:
        raise UserError(f"--candidates {candidates}: give two, e.g. fine-tuned,base")
    result = export_sheet(folder, Path(out_dir), (pair[0], pair[1]), default_seed(folder) if seed is None else seed,
                          limit, force)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{result['examples']} examples (seed {result['seed']}) in {out_dir}: {', '.join(result['files'])}; "
               f"the mapping stays in {result['mapping']} (do not send it)")


@review.command("import")
@click.argument("run_id")
@click.argument("sheet", type=click.Path(dir_okay=False))
@click.option("--reviewer", default=None, metavar="NAME",
              help="Who filled the sheet (default: anonymous for a CSV; Label Studio exports name their annotators).")
@click.option("--runs-dir", default=None, metavar="DIR", help="Where run directories live (default: ./runs).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def import_command(run_id: str, sheet: str, reviewer: str | None, runs_dir: str | None, as_json: bool) -> None:
    """Import a filled review sheet: the human win rate.

    SHEET is a filled review.csv or a Label Studio JSON export. The win rate of the first candidate
    goes into eval.json (human_review) and the tags of the version the run registered; importing a
    reviewer again replaces that reviewer's earlier choices."""
    from ftp.eval.review_sheet import import_sheet
    from ftp.run.store import atomic_write

    folder, run = _locate(run_id, runs_dir)
    payload = _eval_json(folder, required=True)
    summary, skipped = import_sheet(folder, Path(sheet), reviewer, int(payload.get("resamples") or 10_000),
                                    float(payload.get("confidence") or 0.95), int(payload.get("seed") or 0))
    payload[TAG] = summary
    atomic_write(folder / "eval.json", json.dumps(payload, indent=2, ensure_ascii=False))
    tag = {"run_id": run.run_id if run is not None else None, "candidate": summary["candidate"],
           "baseline": summary["baseline"], "method": summary["method"], "confidence": summary["confidence"],
           "updated_at": summary["updated_at"], **summary["pooled"]}
    tagged = _tag_registry(folder, run, tag)
    if as_json:
        click.echo(json.dumps({TAG: summary, "skipped": skipped, "eval_file": str(folder / "eval.json"),
                               "registry": tagged}, indent=2))
        return
    parts = [_line(name, summary["by_reviewer"][name], summary) + f", {n} empty skipped" for name, n in skipped.items()]
    if len(summary["reviewers"]) > 1:
        parts.append(_line(f"pooled over {len(summary['reviewers'])} reviewers", summary["pooled"], summary))
    where = f"{folder / 'eval.json'}" + (f" and {tagged}" if tagged else "")
    click.echo("; ".join(parts) + f"; written to {where}")
