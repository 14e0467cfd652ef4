"""``ftp eval deployment:NAME``: an existing Azure deployment answers the test file, through the same
evaluation as a run; nothing is provisioned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import invoke


def test_an_existing_deployment_is_evaluated_without_provisioning(quickstart: Path, fake_azure: Any) -> None:
    fake_azure.base_deployments["prod-triage"] = "gpt-4.1-mini-2025-04-14"
    fake_azure.base_deployments["gpt-4.1-mini"] = "gpt-4.1-mini-2025-04-14"
    test = quickstart / "data" / "tickets.jsonl"
    result = invoke("eval", "deployment:prod-triage", "--data", str(test), "--max-examples", "6", "--pipeline",
                    "pipeline.yaml", "--backend", "azure", "--report", "rep", "--json",
                    "--set", "backends.azure.evaluation.base_deployment=gpt-4.1-mini")
    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads((quickstart / "rep" / "eval.json").read_text())
    assert report["candidates"] == ["fine-tuned", "base"] and report["n"] == 6
    assert {c["deployment"] for c in fake_azure.chats} == {"prod-triage", "gpt-4.1-mini"}
    assert len(fake_azure.chats) == 12 and not fake_azure.deployments  # nothing was deployed
    assert "loss" not in report["metrics"]["fine-tuned"]  # chat completions give no loss
    assert report["metrics_chosen"]["auto"] and "field_accuracy" in report["metrics"]["fine-tuned"]


def test_a_deployment_needs_the_pipeline_that_says_where_it_is(quickstart: Path) -> None:
    result = invoke("eval", "deployment:prod-triage", "--data", "data/tickets.jsonl")
    assert result.exit_code == 2
    assert "give --pipeline FILE --backend NAME" in result.stderr and len(result.stderr.strip().splitlines()) == 1
