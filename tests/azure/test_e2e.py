"""``ftp run examples/quickstart/pipeline.yaml --backend azure`` against the fake Azure: the same file as
the local quickstart, end to end, then resume and cancel.

How the fake answers (tests/azure/fake_azure.py): files are processed after one poll, the job runs
through pending -> running -> succeeded with falling losses, and chat completions return a fixed text
per deployment. The fake is not a model, so exact match is 0 for every candidate and the quickstart's
gate (beat the base model by 5 points) cannot pass: the test relaxes it with ``--set gate={}``. The
quickstart has no base deployment, so the base model is not evaluated, which the run says.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from conftest import invoke
from helpers import FAST, RELAXED, only_run, state


def test_quickstart_runs_end_to_end_on_azure(quickstart: Path, fake_azure: Any) -> None:
    original = Path(__file__).resolve().parents[2] / "examples" / "quickstart" / "pipeline.yaml"
    assert (quickstart / "pipeline.yaml").read_bytes() == original.read_bytes()  # a copy only to keep runs/ out of the repo
    result = invoke("run", "pipeline.yaml", "--backend", "azure", "--yes", *FAST, *RELAXED)
    assert result.exit_code == 0, result.output + result.stderr
    run_dir = only_run(quickstart)
    st = state(run_dir)
    assert st["status"] == "done" and st["backend"] == "azure"

    # One upload per file (train and validation), one job, GA body with the pipeline's values.
    assert fake_azure.count("upload") == 2 and len(fake_azure.jobs) == 1
    body = fake_azure.job_bodies[0]
    assert body["model"] == "gpt-4.1-mini-2025-04-14"
    assert body["hyperparameters"] == {"n_epochs": 2, "batch_size": 8, "learning_rate_multiplier": 1.0}
    assert body["seed"] == 42 and body["suffix"] == "ticket-triage" and body["validation_file"]
    job = next(iter(fake_azure.jobs.values()))

    # The job's metrics are in metrics.jsonl, so the same loss curve and overfitting verdict as local.
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r.get("phase") == "train"]
    steps = fake_azure.steps_of(job)
    assert [r["step"] for r in train_rows] == list(range(1, steps + 1))
    assert all("train_loss" in r and "eval_loss" in r and "train_token_accuracy" in r for r in train_rows)
    assert (run_dir / "loss_curve.png").stat().st_size > 1000
    assert (run_dir / "azure" / "results.csv").read_text().startswith("step,train_loss")
    assert st["steps"]["review"]["outputs"]["overfitting"] == "no sign of overfitting"
    train = st["steps"]["train"]["outputs"]
    assert train["model"] == {"kind": "cloud", "base": "gpt-4.1-mini-2025-04-14", "backend": "azure", "path": None,
                              "cloud_id": job["fine_tuned_model"], "deployment": None}
    assert train["metrics"]["eval_loss"] < 2.1 and train["train_tokens"] == job["trained_tokens"]

    # Evaluation: the fine-tuned model answered through a DeveloperTier deployment; no base deployment.
    report = json.loads((run_dir / "eval.json").read_text())
    assert set(report["metrics"]) == {"fine-tuned"}
    assert "base_deployment" in report["not_evaluated"]["base"]
    eval_dep = st["resources"]["azure_eval_deployment"]
    assert eval_dep["sku"] == "DeveloperTier" and eval_dep["state"] == "Succeeded"
    assert {c["deployment"] for c in fake_azure.chats} == {eval_dep["name"]}
    assert "base: not evaluated: no deployment of gpt-4.1-mini-2025-04-14 to ask" in " ".join(result.output.split())

    # Registry: the cloud model with its job, files and the same lineage fields as a local run.
    versions = json.loads(invoke("models", "list", "--json", "--registry", ".ftp/registry.db").output)
    assert len(versions) == 1
    v = versions[0]
    assert v["backend"] == "azure" and v["model"]["kind"] == "cloud" and v["model"]["cloud_id"] == job["fine_tuned_model"]
    assert set(v["data_sha256"]) == {"source", "train", "validation", "test"}
    details = v["backend_details"]
    assert details["job_id"] == job["id"] and details["training_file"] == job["training_file"]
    assert details["validation_file"] == job["validation_file"] and len(details["checkpoints"]) == 2
    assert v["pipeline_sha256"] and v["code_version"].startswith("ftp ")
    # the data it was trained on is in the artifact store like a local version's (the model stays on Azure)
    assert {"train", "validation", "test", "manifest", "pipeline"} <= set(v["stored"]) and "model" not in v["stored"]
    assert v["lineage"]["backend"] == "azure" and "evaluation" in v["lineage"]
    restored = invoke("data", "restore", "ticket-triage:1", "--out", "restored", "--registry", ".ftp/registry.db")
    assert restored.exit_code == 0, restored.output + restored.stderr
    assert hashlib.sha256(Path("restored/train.jsonl").read_bytes()).hexdigest() == v["data_sha256"]["train"]

    # Deployment: Standard/DeveloperTier as configured, recorded in the run and the local records.
    deployment = st["steps"]["deploy"]["outputs"]
    assert deployment["backend"] == "azure" and deployment["endpoint"].endswith("/openai/deployments/ticket-triage-v1")
    assert f"slot blue (blue 100%) at {deployment['endpoint']}" in " ".join(result.output.split())
    arm = fake_azure.deployments["ticket-triage-v1"]
    assert arm["sku"] == {"name": "DeveloperTier", "capacity": 50}
    assert arm["properties"]["model"]["name"] == job["fine_tuned_model"]
    with sqlite3.connect(quickstart / ".ftp" / "deployments.db") as db:
        row = db.execute("SELECT backend, json_extract(details, '$.name'), json_extract(details, '$.model'), endpoint "
                         "FROM endpoints").fetchone()
    assert row == ("azure", "ticket-triage-v1", job["fine_tuned_model"], deployment["endpoint"])

    shown = invoke("runs", "show", st["run_id"])
    assert shown.exit_code == 0 and f'azure_job: {{"id": "{job["id"]}", "status": "succeeded"' in shown.output

    # No secret anywhere in the run directory.
    for secret in (fake_azure.api_key, fake_azure.client_secret):
        for path in run_dir.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path



def test_an_overfitting_job_gets_the_same_verdict_as_a_local_run(quickstart: Path, fake_azure: Any) -> None:
    fake_azure.overfit = True
    result = invoke("run", "pipeline.yaml", "--backend", "azure", "--yes", "--steps", "validate,split,train,review",
                    *FAST, *RELAXED)
    assert result.exit_code == 0, result.output + result.stderr
    st = state(only_run(quickstart))
    verdict = st["steps"]["review"]["outputs"]["overfitting"]
    assert verdict.startswith("overfitting: validation loss rose from") and "while training loss fell" in verdict
    assert st["steps"]["train"]["outputs"]["overfitting"] == verdict
    curve = json.loads((only_run(quickstart) / "loss_curve.json").read_text())
    assert len(curve["train_loss"]) == len(curve["eval_loss"]) == fake_azure.steps_of(next(iter(fake_azure.jobs.values())))
