"""Every failure the fake can inject, as a user sees it: one line with what to do, the right exit code,
and retries only where sending again is safe."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from conftest import invoke
from fake_azure import QUOTA_ERROR
from helpers import FAST, RELAXED, only_run, state


def run(*extra: str) -> Any:
    return invoke("run", "pipeline.yaml", "--backend", "azure", "--yes", *FAST, *RELAXED, *extra)


def error_line(result: Any) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_a_file_azure_rejects_shows_its_status_details(quickstart: Path, fake_azure: Any) -> None:
    fake_azure.file_error = "Invalid file format. Line 7: the messages key is missing."
    result = run()
    assert result.exit_code == 1
    line = error_line(result)
    assert re.search(r"Azure rejected the train file file-\w+ \(ftp-[0-9a-f]{16}-train\.jsonl\): Invalid file format\. "
                     r"Line 7: the messages key is missing\.; fix the data", line), line
    assert not fake_azure.jobs


def test_a_failed_job_is_one_line_with_its_error(quickstart: Path, fake_azure: Any) -> None:
    fake_azure.job_error = {"code": "invalidTrainingFile", "param": "training_file",
                            "message": "The job failed due to an invalid training file.\nExpected 10 examples."}
    result = run()
    assert result.exit_code == 1
    assert error_line(result).endswith("failed: invalidTrainingFile (training_file): The job failed due to an invalid "
                                       "training file. Expected 10 examples.")
    st = state(only_run(quickstart))
    assert st["steps"]["train"]["status"] == "failed" and st["steps"]["deploy"]["status"] == "pending"


def test_insufficient_quota_on_deployment_says_how_to_fix_it(quickstart: Path, fake_azure: Any) -> None:
    fake_azure.fail("arm_put", status=400, body=QUOTA_ERROR, times=5)
    result = run("--set", "backends.azure.evaluation.fine_tuned=none")
    assert result.exit_code == 1
    line = error_line(result)
    assert line.startswith("error: deploy: Azure deployment 'ticket-triage-v1' failed: InsufficientQuota: This "
                           "operation require 50 new capacity"), line
    assert "fix: lower backends.azure.deployment.capacity" in line
    st = state(only_run(quickstart))
    assert st["steps"]["register"]["status"] == "done" and st["steps"]["deploy"]["status"] == "failed"
    # Without a deployment to ask, the fine-tuned model falls back to the job's own numbers, said plainly.
    assert "fine-tuned: not evaluated: backends.azure.evaluation.fine_tuned is none" in result.output
    assert "eval_loss" in st["steps"]["evaluate"]["outputs"]["not_evaluated"]["fine-tuned"]


def test_a_burst_of_429s_is_retried_after_retry_after(quickstart: Path, fake_azure: Any) -> None:
    fake_azure.throttle("job", times=3, retry_after="7")
    fake_azure.throttle("upload", times=1, retry_after="2")
    result = run()
    assert result.exit_code == 0, result.stderr
    assert fake_azure.clock.sleeps.count(7.0) == 3 and 2.0 in fake_azure.clock.sleeps
    assert len(fake_azure.jobs) == 1 and fake_azure.count("upload") == 3
    assert "retrying in 7.0s" in (only_run(quickstart) / "run.log").read_text()


def test_a_500_in_the_middle_of_polling_is_retried(quickstart: Path, fake_azure: Any) -> None:
    fake_azure.fail("job", status=500, skip=2, times=2)
    result = run()
    assert result.exit_code == 0, result.stderr
    assert len(fake_azure.jobs) == 1 and state(only_run(quickstart))["status"] == "done"


def test_a_connection_reset_is_retried(quickstart: Path, fake_azure: Any) -> None:
    fake_azure.fail("events", reset=True, skip=1)
    fake_azure.fail("file", reset=True)
    result = run()
    assert result.exit_code == 0, result.stderr


def test_an_upload_whose_answer_was_lost_is_not_sent_twice(quickstart: Path, fake_azure: Any) -> None:
    fake_azure.fail("upload", reset=True, after_effect=True)
    result = run()
    assert result.exit_code == 0, result.stderr
    assert len([f for f in fake_azure.files.values() if f["filename"].endswith("-train.jsonl")]) == 1


def test_retries_stop_within_their_bounds(quickstart: Path, fake_azure: Any) -> None:
    fake_azure.fail("job", status=503, times=1000)
    result = run("--set", "backends.azure.retry.attempts=4", "--set", "backends.azure.retry.base_delay=1")
    assert result.exit_code == 1
    line = error_line(result)
    assert "HTTP 503 internalFailure: The service failed." in line and "gave up after 4 tries" in line
    waits = fake_azure.clock.sleeps
    assert len([w for w in waits if w > 0]) == 3 and all(0.5 <= w <= 4 for w in waits if w > 0)  # 1, 2, 4 with jitter
    assert state(only_run(quickstart))["resources"]["azure_job"]["id"]  # resumable: the job is still known


def test_a_non_transient_4xx_fails_at_once_with_the_service_message(quickstart: Path, fake_azure: Any) -> None:
    result = run("--set", "backends.azure.model.base=gpt-4.1-nano-2025-04-14")  # Azure can, the fake cannot
    assert result.exit_code == 1
    assert error_line(result).endswith("Azure refused the job: POST /openai/fine_tuning/jobs: HTTP 400 invalidPayload: "
                                       "The specified base model does not support fine-tuning: gpt-4.1-nano-2025-04-14")
    assert fake_azure.count("create_job") == 1
    assert "retrying" not in (only_run(quickstart) / "run.log").read_text()


def test_a_wrong_key_is_reported_without_the_key(quickstart: Path, fake_azure: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "wrong-key-0123456789")
    result = run()
    assert result.exit_code == 1
    line = error_line(result)
    assert "HTTP 401" in line and "check the API key variable" in line
    run_dir = only_run(quickstart)
    for path in [p for p in run_dir.rglob("*") if p.is_file()]:
        assert b"wrong-key-0123456789" not in path.read_bytes(), path
    assert "wrong-key" not in result.stderr + result.output


def test_local_models_and_a_missing_endpoint_are_refused_before_a_run(quickstart: Path, fake_azure: Any,
                                                                         monkeypatch: Any) -> None:
    local = run("--set", "backends.azure.model.base=builtin:gemma-3-270m")
    assert local.exit_code == 2 and "is a local model; give the Azure OpenAI base model" in local.stderr
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT")
    missing = run()
    assert missing.exit_code == 2 and "export AZURE_OPENAI_ENDPOINT=" in missing.stderr
    assert not (quickstart / "runs").exists()


def test_retry_after_counts_against_the_total_time_budget(quickstart: Path, fake_azure: Any) -> None:
    fake_azure.throttle("job", times=50, retry_after="100")
    result = run("--set", "backends.azure.retry.max_total=250", "--set", "backends.azure.retry.max_delay=120")
    assert result.exit_code == 1
    assert "HTTP 429 tooManyRequests: Rate limit is exceeded. (gave up after 3 tries and 200s of waiting" in error_line(result)
    assert fake_azure.clock.sleeps.count(100.0) == 2  # a third wait would pass 250 s


def test_a_prompt_blocked_by_the_content_filter_is_an_empty_answer(quickstart: Path, fake_azure: Any) -> None:
    fake_azure.fail("chat", status=400, skip=3, body={"error": {"code": "content_filter", "message": (
        "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.")}})
    result = run("--steps", "validate,split,train,evaluate")
    assert result.exit_code == 0, result.stderr
    answers = [row["fine-tuned"] for row in json.loads((only_run(quickstart) / "eval.json").read_text())["examples"]]
    assert answers.count("") == 1 and len(answers) == 32
    assert "content filter blocked a test prompt" in (only_run(quickstart) / "run.log").read_text()


def test_without_management_settings_evaluation_falls_back_to_the_job_numbers(quickstart: Path, fake_azure: Any,
                                                                               monkeypatch: Any) -> None:
    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID")
    result = run("--steps", "validate,split,train,review,evaluate")
    assert result.exit_code == 0, result.stderr
    said = " ".join(result.output.split())
    assert ("fine-tuned: not evaluated: no deployment can be made to answer the test prompts (backends.azure: "
            "subscription_id not set; or set evaluation.fine_tuned: none); the job's own validation numbers: "
            "train_loss 0.4000, eval_loss") in said
    assert not fake_azure.deployments
