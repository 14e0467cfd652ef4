"""``ftp run --dry-run``: which plugin handles each step, and the settings it will get."""

from __future__ import annotations

import json
from typing import Any

import click

from ftp.hooks import Hooks
from ftp.config.pipeline_file import Pipeline
from ftp.run.runner import preflight


def plan(pipeline: Pipeline, hooks: Hooks, steps: list[str]) -> dict[str, Any]:
    s = pipeline.settings
    trainer = hooks.trainer(pipeline.backend)
    warnings = preflight(pipeline, trainer)
    registry = hooks.model_registry(s.registration.registry, s.registration.location())
    deployer = hooks.deployer(pipeline.backend)
    given = s.data.validation is not None and s.data.test is not None
    handlers = {
        "validate": {"plugins": hooks.implementers("ftp_data_checks") + hooks.implementers("ftp_validate_data")},
        "split": {"plugins": [] if given else hooks.implementers("ftp_split")[:1],
                  "detail": "validation and test files given" if given else
                  f"ratios {list(s.data.split.ratios)}, seed {s.data.split.seed}"},
        "train": {"component": trainer.name, "detail": f"{s.train.method} on {s.model.base}"},
        "review": {"plugins": hooks.implementers("ftp_review")},
        "evaluate": {"plugins": hooks.implementers("ftp_evaluate"),
                     "detail": f"metrics {', '.join(s.evaluate.metrics) if s.evaluate.metrics else 'chosen from the answers'}; compare to {', '.join(s.evaluate.compare_to) or 'nothing'}"},
        "gate": {"plugins": hooks.implementers("ftp_gate"),
                 "detail": ", ".join(s.gate.rules()) or "no thresholds"},
        "register": {"component": registry.name, "detail": registry.location},
        "deploy": {"component": deployer.name, "detail": f"{s.deploy.strategy}, new version gets {s.deploy.traffic.new}%"},
    }
    return {"pipeline": str(pipeline.path), "backend": pipeline.backend, "warnings": warnings,
            "steps": {k: v for k, v in handlers.items() if k in steps},
            "settings": pipeline.resolved_yaml()}


def describe_plan(pipeline: Pipeline, hooks: Hooks, steps: list[str], as_json: bool) -> None:
    data = plan(pipeline, hooks, steps)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"plan for {data['pipeline']} on backend {data['backend']} (dry run: nothing is executed)")
    for step, h in data["steps"].items():
        who = h.get("component") or ", ".join(h.get("plugins", [])) or "-"
        detail = f"  ({h['detail']})" if h.get("detail") else ""
        click.echo(f"  {step:<9} {who}{detail}")
    for warning in data["warnings"]:
        click.echo(f"warning: {warning}")
    click.echo("\nresolved settings:\n")
    click.echo(data["settings"])
