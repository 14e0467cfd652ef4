"""The cost guard: the estimate is shown before anything is submitted, ``max_cost`` refuses above it,
and without ``--yes`` the user is asked (and no answer means no)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import invoke
from helpers import FAST, RELAXED, only_run, state


def run(*extra: str, **kwargs: Any) -> Any:
    return invoke("run", "pipeline.yaml", "--backend", "azure", *FAST, *RELAXED, *extra, **kwargs)


def estimate_event(output: str) -> dict[str, Any]:
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return next(e for e in events if e["event"] == "cost_estimate")


def test_the_estimate_is_tokens_times_epochs_times_the_configured_price(quickstart: Path, fake_azure: Any) -> None:
    result = run("--yes", "--json", "--steps", "validate,split,train",
                 "--set", "backends.azure.prices={gpt-4.1-mini: 4.0}", "--set", "train.epochs=3")
    assert result.exit_code == 0, result.stderr
    event = estimate_event(result.output)
    assert event["epochs"] == 3 and event["tokens"] > 1000
    assert abs(event["cost"] - event["tokens"] * 3 * 4.0 / 1e6) < 1e-9
    assert "yours to check" in event["message"] and "× 3 epochs" in event["message"]
    assert fake_azure.job_bodies[0]["hyperparameters"]["n_epochs"] == 3


def test_max_cost_refuses_to_submit(quickstart: Path, fake_azure: Any) -> None:
    result = run("--yes", "--set", "backends.azure.max_cost=0.01")
    assert result.exit_code == 2
    assert "backends.azure.max_cost: the job is estimated at" in result.stderr and "over the limit of 0.01" in result.stderr
    assert not fake_azure.jobs and fake_azure.count("upload") == 0  # refused before anything was sent


def test_max_cost_without_a_price_for_the_model_is_refused(quickstart: Path, fake_azure: Any) -> None:
    result = run("--yes", "--set", "backends.azure.prices={}")
    assert result.exit_code == 2 and "has no price for this model" in result.stderr
    assert not fake_azure.jobs


def test_without_yes_the_user_is_asked(quickstart: Path, fake_azure: Any) -> None:
    declined = run(input="n\n")
    assert declined.exit_code == 1
    assert "Submit the fine-tuning job of gpt-4.1-mini-2025-04-14 to Azure (about" in declined.stderr
    assert "not submitted" in declined.stderr and not fake_azure.jobs
    run_id = state(only_run(quickstart))["run_id"]

    nobody = invoke("run", "--resume", run_id)  # no terminal input at all: no
    assert nobody.exit_code == 1 and not fake_azure.jobs

    accepted = invoke("run", "--resume", run_id, input="y\n")
    assert accepted.exit_code == 0, accepted.stderr
    assert len(fake_azure.jobs) == 1


def test_a_fractional_epoch_count_is_refused_for_azure(quickstart: Path, fake_azure: Any) -> None:
    result = run("--yes", "--set", "train.epochs=1.5")
    assert result.exit_code == 2 and "train.epochs: Azure takes a whole number of epochs" in result.stderr
    assert not fake_azure.jobs and not (quickstart / "runs").exists()  # refused before any step, any upload
