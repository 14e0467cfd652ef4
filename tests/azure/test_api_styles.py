"""The request shapes: auth headers, api-version vs /openai/v1/, the GA and the preview ``method`` body,
uploads once per content, and chat completions on the configured deployments."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from conftest import invoke
from fake_azure import ENDPOINT
from helpers import FAST, RELAXED, only_run, run_dirs, state


def run(*extra: str) -> Any:
    return invoke("run", "pipeline.yaml", "--backend", "azure", "--yes", *FAST, *RELAXED, *extra)


def data_plane_urls(fake: Any) -> list[str]:
    return [url for route, url in fake.calls if url.startswith(ENDPOINT)]


def test_ga_api_version_is_sent_on_every_data_plane_call(quickstart: Path, fake_azure: Any) -> None:
    assert run().exit_code == 0
    for url in data_plane_urls(fake_azure):
        assert "/openai/v1/" not in url and parse_qs(urlparse(url).query)["api-version"] == ["2024-10-21"], url
    assert "method" not in fake_azure.job_bodies[0]


def test_preview_api_version_sends_the_method_body(quickstart: Path, fake_azure: Any) -> None:
    assert run("--set", "backends.azure.api_version=2025-04-01-preview").exit_code == 0
    body = fake_azure.job_bodies[0]
    assert "hyperparameters" not in body
    assert body["method"] == {"type": "supervised", "supervised": {"hyperparameters": {
        "n_epochs": 2, "batch_size": 8, "learning_rate_multiplier": 1.0}}}
    assert all("api-version=2025-04-01-preview" in url for url in data_plane_urls(fake_azure))


def test_v1_paths_carry_no_api_version(quickstart: Path, fake_azure: Any) -> None:
    result = run("--set", "backends.azure.api_version=v1")
    assert result.exit_code == 0, result.stderr
    urls = data_plane_urls(fake_azure)
    assert urls and all(url.startswith(f"{ENDPOINT}/openai/v1/") and "api-version" not in url for url in urls)
    assert "method" in fake_azure.job_bodies[0]
    assert any(url.endswith("/openai/v1/chat/completions") for url in urls)
    assert {c["model"] for c in fake_azure.chats} == {fake_azure.chats[0]["deployment"]}


def test_entra_id_tokens_with_each_plane_s_scope(quickstart: Path, fake_azure: Any) -> None:
    """auth: entra signs in through azure-identity (the fake's token endpoint) with the data-plane scope."""
    result = run("--set", "backends.azure.auth=entra")
    assert result.exit_code == 0, result.stderr
    assert set(fake_azure.tokens.values()) == {"https://cognitiveservices.azure.com/.default",
                                               "https://management.azure.com/.default"}
    assert fake_azure.count("token") == 2  # one per scope: the credential caches its tokens
    run_dir = only_run(quickstart)
    for token in fake_azure.tokens:
        assert not any(token.encode() in p.read_bytes() for p in run_dir.rglob("*") if p.is_file())


def test_the_same_content_is_not_uploaded_twice(quickstart: Path, fake_azure: Any) -> None:
    assert run().exit_code == 0
    assert run().exit_code == 0
    assert len(run_dirs(quickstart)) == 2 and len(fake_azure.jobs) == 2
    assert fake_azure.count("upload") == 2  # the second run found both files by their content hash
    first, second = (state(r)["resources"]["azure_files"] for r in run_dirs(quickstart))
    assert first == second


def test_a_base_deployment_makes_the_comparison_a_real_one(quickstart: Path, fake_azure: Any) -> None:
    fake_azure.base_deployments["gpt-4.1-mini"] = "gpt-4.1-mini-2025-04-14"
    result = run("--set", "backends.azure.evaluation.base_deployment=gpt-4.1-mini")
    assert result.exit_code == 0, result.stderr
    report = json.loads((only_run(quickstart) / "eval.json").read_text())
    assert set(report["metrics"]) == {"fine-tuned", "base"}
    assert set(report.get("not_evaluated", {})) == {"champion"}  # the quickstart compares with one, none deployed yet
    asked = {c["deployment"] for c in fake_azure.chats}
    assert "gpt-4.1-mini" in asked and len(asked) == 2
    chat = next(c for c in fake_azure.chats if c["deployment"] == "gpt-4.1-mini")
    assert chat["temperature"] == 0.0 and chat["messages"][-1]["role"] == "user" and chat["max_tokens"] > 0
    # The test prompts, not the reference answers, are what the deployments saw.
    assert all(m["role"] != "assistant" for c in fake_azure.chats for m in c["messages"][-1:])


def test_the_deployment_sku_and_capacity_come_from_the_file(quickstart: Path, fake_azure: Any) -> None:
    result = run("--set", "backends.azure.deployment={sku: globalstandard, capacity: 10, name: triage-prod}",
                 "--set", "backends.azure.evaluation.fine_tuned=none")
    assert result.exit_code == 0, result.stderr
    # the quickstart deploys blue-green, so the version gets its own deployment under the configured name
    assert fake_azure.deployments["triage-prod-v1"]["sku"] == {"name": "GlobalStandard", "capacity": 10}
    arm_puts = [url for route, url in fake_azure.calls if route == "arm_put"]
    assert len(arm_puts) == 1 and "api-version=" in arm_puts[0]


def test_polling_backs_off_while_nothing_changes(quickstart: Path, fake_azure: Any) -> None:
    fake_azure.polls_per_state = 4  # the job stays in each state for four polls
    result = run("--steps", "validate,split,train", "--set", "backends.azure.poll.interval=1",
                 "--set", "backends.azure.poll.backoff=2", "--set", "backends.azure.poll.max_interval=3")
    assert result.exit_code == 0, result.stderr
    waits = fake_azure.clock.sleeps
    assert 2 in waits and 3 in waits and max(waits) == 3  # 1, 2, 3 (capped), back to 1 when something happens
    log = (only_run(quickstart) / "run.log").read_text()
    assert "Job started." in log and "Job succeeded." in log  # events reach run.log as well as the display


def test_blue_green_gives_each_version_its_own_deployment_beside_the_live_one(quickstart: Path, fake_azure: Any) -> None:
    named = ("--set", "backends.azure.deployment.name=triage-prod", "--set", "backends.azure.evaluation.fine_tuned=none")
    assert run(*named).exit_code == 0 and run(*named).exit_code == 0  # the quickstart deploys blue-green
    first, second = (fake_azure.deployments[n]["properties"]["model"]["name"] for n in ("triage-prod-v1", "triage-prod-v2"))
    assert first != second and set(fake_azure.deployments) == {"triage-prod-v1", "triage-prod-v2"}
    # the second run's deploy (two runs may start within one second, so their ids do not order them)
    deployed = next(out for out in (state(d)["steps"]["deploy"]["outputs"] for d in run_dirs(quickstart))
                    if out.get("version") == 2)
    assert deployed["endpoint"] == f"{ENDPOINT}/openai/deployments/triage-prod-v2"


def test_replace_updates_the_one_named_deployment_in_place(quickstart: Path, fake_azure: Any) -> None:
    named = ("--set", "backends.azure.deployment.name=triage-prod", "--set", "backends.azure.evaluation.fine_tuned=none",
             "--set", "deploy.strategy=replace")
    assert run(*named).exit_code == 0 and run(*named).exit_code == 0
    assert set(fake_azure.deployments) == {"triage-prod"} and fake_azure.count("arm_put") == 2
    latest = list(fake_azure.jobs.values())[-1]["fine_tuned_model"]
    assert fake_azure.deployments["triage-prod"]["properties"]["model"]["name"] == latest  # the new model, same name
