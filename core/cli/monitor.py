"""``ftp monitor``, ``ftp feedback import`` and ``ftp retrain``: the loop from served traffic back to a
better model. The work is ``ftp.monitor``'s; this module reads options, prints, and picks exit codes
(10: a threshold crossed or a retrain due, distinct from 1 and 2, so cron and CI can tell them apart)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ftp.cli.deploy import known_state
from ftp.errors import UserError

CROSSED = 10  # exit code of --check when a threshold is crossed or a retrain is due

pipeline_option = click.option("-p", "--pipeline", default="pipeline.yaml", show_default=True,
                               type=click.Path(dir_okay=False), metavar="FILE",
                               help="The pipeline file: deploy.store, serve.request_log, register.*, monitor:, retrain_when:.")


def sources(pipeline: str, backend: str | None = None) -> tuple[Any, Any, Any]:
    """(Sources, hooks, loaded pipeline) from the pipeline file."""
    from ftp.config import DEFAULT_BACKEND
    from ftp.config.pipeline_file import load_pipeline
    from ftp.hooks import default_hooks
    from ftp.monitor.gather import Sources

    if not Path(pipeline).is_file():
        raise UserError(f"-p {pipeline}: no such pipeline file; give the file the deployment was made with")
    hooks = default_hooks()
    loaded = load_pipeline(Path(pipeline), backend or DEFAULT_BACKEND, hooks.catalog())
    s = loaded.settings
    reg = s.registration
    store = Path(s.deploy.store)
    return (Sources(settings=s, store=store, log=s.serve.log_path(store),
                    registry=hooks.model_registry(reg.registry, reg.location()), artifacts=Path(reg.artifacts)),
            hooks, loaded)


def _ms(p: dict[str, float] | None) -> str:
    return "-" if not p else f"{p['p50']:.0f}/{p['p95']:.0f}/{p['p99']:.0f}"


def show(summary: dict[str, Any]) -> None:
    """The summary in a few lines: totals, the last window's drift, quality, rollout, checks."""
    click.echo(f"{summary['name']}: {summary['since'][:16]} .. {summary['until'][:16]} UTC, "
               f"windows of {summary['window_s'] / 60:g} min")
    if not summary["totals"]:
        click.echo("  no requests in the period")
    for t in summary["totals"]:
        where = f"{t['slot'] or 'base'} v{t['version']}" + (" (mirror)" if t["mirrored"] else "")
        rate = "-" if t["error_rate"] is None else f"{t['error_rate']:.1%}"
        click.echo(f"  {where}: {t['requests']} requests, errors {rate}, latency p50/p95/p99 {_ms(t['latency_ms'])} ms, "
                   f"ttft {_ms(t['ttft_ms'])} ms, tokens {t['prompt_tokens']} in / {t['completion_tokens']} out")
    ref = summary["drift"]["reference"]
    last = summary["windows"][-1] if summary["windows"] else None
    if ref is None:
        click.echo("  drift: no reference (the live version's training data is not in the artifact store)")
    else:
        latest = [d for d in summary["drift"]["results"] if d["window"] == last]
        drifted = [d for d in latest if d["verdict"] == "drift"]
        judged = [d for d in latest if d["verdict"] != "insufficient_data"]
        detail = ", ".join(f"{d['feature']} {d['value']:.3f}" for d in drifted) or "none"
        click.echo(f"  drift (last window, vs v{ref['version']}'s {ref['examples']} training examples): "
                   + (f"{len(drifted)} of {len(judged)} features drifted: {detail}" if judged else
                      f"insufficient data ({latest[0]['n_current'] if latest else 0} requests, need "
                      f"{summary.get('min_samples', 'min_samples')})"))
    for q in summary["quality"]:
        if q["window"] is None and q["n"]:
            click.echo(f"  quality {q['slot']} v{q['version']}: accuracy {q['value']:.3f} "
                       f"(95% CI {q['low']:.3f}-{q['high']:.3f}, n {q['n']})")
    if summary["rollout"]:
        r = summary["rollout"]
        for s in r["signals"]:
            click.echo(f"  rollout {r['new']['slot']} v{r['new']['version']} vs {r['old']['slot']} v{r['old']['version']}: "
                       f"{s['signal']} {s['new']} vs {s['old']} ({s['verdict']})")
    crossed = [c for c in summary["checks"] if c["crossed"]]
    click.echo(f"  checks: {len(crossed)} of {len(summary['checks'])} thresholds crossed" if summary["checks"]
               else "  checks: nothing to check yet")
    for c in crossed:
        click.echo(f"    {c['message']}")


@click.command("monitor")
@click.argument("name")
@pipeline_option
@click.option("--since", default=None, metavar="DURATION", help="The period, back from now (default monitor.since, 24h).")
@click.option("--window", default=None, metavar="DURATION", help="Window size (default monitor.window, 1h).")
@click.option("--until", default=None, metavar="TIME", help="The period's end, ISO time (default now), e.g. 2026-12-01T00:00Z.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--report", default=None, type=click.Path(dir_okay=False), metavar="FILE.html",
              help="Write a self-contained HTML report with plots over time.")
@click.option("--check", is_flag=True, help="Exit 10 when a monitor: threshold is crossed or retrain_when: fires; "
                                            "roll a rollout back when deploy.auto_rollback says so.")
@click.option("--retrain", is_flag=True, help="With --check: run the retrain when retrain_when: fires.")
def monitor(name: str, pipeline: str, since: str | None, window: str | None, until: str | None, as_json: bool,
            report: str | None, check: bool, retrain: bool) -> None:
    """Service signals, drift against the training data and quality from feedback for deployment NAME."""
    from ftp.config.monitor_settings import seconds
    from ftp.monitor import decisions
    from ftp.monitor.gather import gather
    from ftp.monitor.summary import build_summary, crossed

    for option, value in (("--since", since), ("--window", window)):
        if value is not None:
            try:
                seconds(value)
            except ValueError as exc:
                raise UserError(f"{option} {exc}") from None
    if retrain and not check:
        raise UserError("--retrain goes with --check (ftp monitor NAME --check --retrain), or run ftp retrain NAME")
    src, hooks, loaded = sources(pipeline)
    known_state(src.store, name)
    inputs = gather(src, name, since, window, until=_moment(until))
    summary = build_summary(inputs)
    summary["min_samples"] = src.settings.monitor.min_samples
    messages: list[str] = []
    if check:
        messages = crossed(summary) + _rollback(src, name, summary) + _trigger(src, hooks, loaded, name, summary,
                                                                               inputs, retrain)
        summary["decisions"] = decisions.read(src.log, name)
    if report:
        from ftp.monitor.report import write_monitor_html

        write_monitor_html(summary, Path(report))
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
    else:
        show(summary)
        if report:
            click.echo(f"report: {report}")
    if messages:
        click.echo(f"monitor: {name}: " + "; ".join(messages), err=True)
        raise SystemExit(CROSSED)


def _moment(text: str | None) -> Any:
    from ftp.monitor.windows import parse
    from ftp.serve.request_log import normalise_ts

    return parse(normalise_ts(text)) if text else None  # normalise_ts: a one-line error for a bad time


def _rollback(src: Any, name: str, summary: dict[str, Any]) -> list[str]:
    """With deploy.auto_rollback: the rollout rolled back when a signal is worse."""
    from ftp.monitor.rollout import reasons, roll_back

    if src.settings.deploy.auto_rollback is None or not summary["rollout"]:
        return []
    why = reasons(summary["rollout"])
    if not why:
        return []
    done = roll_back(src.store, name, summary["rollout"], why, None, src.log)
    new = summary["rollout"]["new"]
    return [f"rolled back {new['slot']} v{new['version']} to 0%: {why[0]}"] if done else []


def _trigger(src: Any, hooks: Any, loaded: Any, name: str, summary: dict[str, Any], inputs: Any,
             run: bool) -> list[str]:
    from ftp.monitor.retrain import judge, recorded, retrain

    if not src.settings.retrain_when.rules():
        return []
    decision = judge(src, name, summary, inputs.labels, hooks)
    if not decision["fired"]:
        recorded(src, name, decision)
        return []
    if not run:
        recorded(src, name, {**decision, "recommended": True})
        return [f"retrain due: {decision['reasons'][0]}"]
    details = retrain(src, loaded.path, name, decision)
    return [f"retrained ({decision['reasons'][0]}): {details.get('run_id')}, challenger v{details.get('registered')}"]


@click.group("feedback")
def feedback() -> None:
    """Labelled feedback on served answers (also POST /v1/feedback on ftp serve)."""


@feedback.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@pipeline_option
def feedback_import(file: str, pipeline: str) -> None:
    """Store every line of FILE (JSONL: request_id or messages, name, value, ...) in the request log's file."""
    from ftp.monitor.feedback import import_feedback

    src, _, _ = sources(pipeline)
    count = import_feedback(src.log, Path(file))
    click.echo(f"imported {count} feedback items into {src.log}")


@click.command("retrain")
@click.argument("name")
@pipeline_option
@click.option("--force", is_flag=True, help="Retrain whatever the rules say (a manual trigger; the cooldown too is ignored).")
@click.option("--dry-run", is_flag=True, help="Say what the rules decide; record and run nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
def retrain_command(name: str, pipeline: str, force: bool, dry_run: bool, as_json: bool) -> None:
    """Judge retrain_when: for NAME and, when it fires, train the next version on the training data plus the
    corrected answers, evaluate it against base and champion, and roll it out as the challenger."""
    from ftp.monitor.gather import gather
    from ftp.monitor.retrain import judge, recorded, retrain
    from ftp.monitor.summary import build_summary

    src, hooks, loaded = sources(pipeline)
    known_state(src.store, name)
    inputs = gather(src, name)
    decision = judge(src, name, build_summary(inputs), inputs.labels, hooks)
    if force:
        decision = {**decision, "fired": True, "manual": True, "reasons": ["manual: ftp retrain --force"]}
    if as_json and dry_run:
        click.echo(json.dumps(decision, indent=2, default=str))
        return
    for line in decision["reasons"]:
        click.echo(f"{'fires' if decision['fired'] else 'no retrain'}: {line}")
    if dry_run:
        return
    if not decision["fired"]:
        recorded(src, name, decision)
        return
    details = retrain(src, loaded.path, name, decision)
    summary = (f"{name}: run {details['run_id']} trained on {details['new_examples']} new examples "
               f"(+ v{details['from_version']}'s data); " + (f"v{details['registered']} is the challenger"
                                                              if details.get("registered") else "not registered"))
    click.echo(json.dumps(details, indent=2, default=str) if as_json else summary)
