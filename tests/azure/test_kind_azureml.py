"""``backends.azure.kind: azureml`` from the pipeline's side: the trainer dispatches to the Azure ML
path, which refuses what cannot work before anything is created. (The SDK calls themselves are tested
over HTTP in test_azureml.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import invoke
from helpers import FAST, only_run, state

AZUREML = ("--set", "backends.azure.kind=azureml", "--set", "backends.azure.model.base=Phi-4-mini-instruct")


def test_azureml_needs_a_workspace(quickstart: Path, fake_azure: Any) -> None:
    result = invoke("run", "pipeline.yaml", "--backend", "azure", "--yes", *FAST, *AZUREML)
    assert result.exit_code == 2
    assert "backends.azure: kind azureml needs workspace (the Azure ML workspace)" in result.stderr
    assert not (quickstart / "runs").exists()


def test_cancel_of_an_azureml_run_without_a_job(quickstart: Path, fake_azure: Any) -> None:
    result = invoke("run", "pipeline.yaml", "--backend", "azure", "--steps", "validate,split", *FAST, *AZUREML,
                    "--set", "backends.azure.workspace=ml-ws")
    assert result.exit_code == 0, result.stderr
    cancelled = invoke("runs", "cancel", state(only_run(quickstart))["run_id"])
    assert cancelled.exit_code == 2
    assert "has no Azure ML job to cancel (none was submitted)" in cancelled.stderr
