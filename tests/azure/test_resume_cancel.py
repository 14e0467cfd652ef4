"""Crash, Ctrl-C, resume and cancel: whatever happens, one run creates exactly one Azure job.

A crash is the client process dying at a chosen request (the fake raises KeyboardInterrupt there, as
Ctrl-C does); ``ftp run --resume`` then has to reattach from what ``state.json`` recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import invoke
from helpers import FAST, RELAXED, only_run, state


def run(*extra: str) -> Any:
    return invoke("run", "pipeline.yaml", "--backend", "azure", "--yes", *FAST, *RELAXED, *extra)


def resume(run_id: str, *extra: str) -> Any:
    return invoke("run", "--resume", run_id, "--yes", *extra)


def test_ctrl_c_while_following_then_resume_reattaches(quickstart: Path, fake_azure: Any) -> None:
    fake_azure.fail("job", interrupt=True, skip=1)  # the second poll of the job never returns
    first = run()
    assert first.exit_code == 130, first.stderr
    run_dir = only_run(quickstart)
    st = state(run_dir)
    job_id = st["resources"]["azure_job"]["id"]
    assert st["steps"]["train"]["status"] == "interrupted" and job_id in fake_azure.jobs
    assert f"ftp run --resume {st['run_id']}" in first.stderr

    second = resume(st["run_id"])
    assert second.exit_code == 0, second.output + second.stderr
    assert "reattaching to job" in second.output
    assert len(fake_azure.jobs) == 1 and fake_azure.count("create_job") == 1
    assert fake_azure.count("upload") == 2  # the files were recorded, not uploaded again
    done = state(run_dir)
    assert done["status"] == "done"
    assert done["steps"]["train"]["outputs"]["backend_details"]["job_id"] == job_id
    train_rows = [line for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"phase": "train"' in line]
    assert len(train_rows) == fake_azure.steps_of(fake_azure.jobs[job_id])  # streamed again, not twice


def test_crash_after_submitting_before_the_job_id_is_saved(quickstart: Path, fake_azure: Any) -> None:
    """The job was created but the answer never arrived: resume finds it by its files, not by submitting again."""
    fake_azure.fail("create_job", interrupt=True, after_effect=True)
    assert run().exit_code == 130
    st = state(only_run(quickstart))
    assert "azure_job" not in st["resources"] and "azure_submission" in st["resources"]
    assert len(fake_azure.jobs) == 1

    again = invoke("run", "--resume", st["run_id"])  # no --yes and no terminal: it must not ask again
    assert again.exit_code == 0, again.output + again.stderr
    assert "submitted before a crash" in again.output and "Submit the fine-tuning job" not in again.stderr
    assert len(fake_azure.jobs) == 1 and fake_azure.count("create_job") == 1


def test_connection_reset_on_submission_does_not_create_a_second_job(quickstart: Path, fake_azure: Any) -> None:
    fake_azure.fail("create_job", reset=True, after_effect=True)  # created, then the connection dropped
    result = run()
    assert result.exit_code == 0, result.output + result.stderr
    assert len(fake_azure.jobs) == 1 and fake_azure.count("create_job") == 1


def test_a_submission_that_never_arrived_is_sent_again(quickstart: Path, fake_azure: Any) -> None:
    fake_azure.fail("create_job", reset=True)  # reset before Azure saw it: no job exists
    result = run()
    assert result.exit_code == 0, result.output + result.stderr
    assert len(fake_azure.jobs) == 1 and fake_azure.count("create_job") == 2


def test_cancel_stops_the_cloud_job_and_resume_does_not_submit_another(quickstart: Path, fake_azure: Any) -> None:
    fake_azure.fail("job", interrupt=True, skip=1)
    assert run().exit_code == 130
    run_id = state(only_run(quickstart))["run_id"]
    job_id = state(only_run(quickstart))["resources"]["azure_job"]["id"]

    cancelled = invoke("runs", "cancel", run_id)
    assert cancelled.exit_code == 0, cancelled.stderr
    assert f"cancel requested for Azure job {job_id} (status: cancelled)" in cancelled.output
    assert fake_azure.jobs[job_id]["status"] == "cancelled"
    st = state(only_run(quickstart))
    assert st["status"] == "failed" and "cancelled with ftp runs cancel" in st["steps"]["train"]["error"]

    again = resume(run_id)
    assert again.exit_code == 1
    assert f"Azure job {job_id} was cancelled; start a new run" in again.stderr
    assert len(fake_azure.jobs) == 1

    twice = invoke("runs", "cancel", run_id)
    assert twice.exit_code == 0 and "already cancelled; nothing to cancel" in twice.output


def test_cancel_without_a_job_says_so(quickstart: Path, fake_azure: Any) -> None:
    assert run("--steps", "validate,split").exit_code == 0
    result = invoke("runs", "cancel", state(only_run(quickstart))["run_id"])
    assert result.exit_code == 2
    assert "has no Azure job to cancel (none was submitted)" in result.stderr


def test_a_deleted_file_is_uploaded_again_on_resume(quickstart: Path, fake_azure: Any) -> None:
    fake_azure.fail("create_job", interrupt=True)  # dies just before submitting, after both uploads
    assert run().exit_code == 130
    st = state(only_run(quickstart))
    train_id = next(e["id"] for e in st["resources"]["azure_files"].values() if e["split"] == "train")
    del fake_azure.files[train_id]  # someone cleaned up the resource meanwhile
    again = resume(st["run_id"])
    assert again.exit_code == 0, again.stderr
    assert fake_azure.count("upload") == 3 and len(fake_azure.jobs) == 1


def test_a_local_run_has_nothing_to_cancel(project: Path) -> None:
    assert invoke("run", "pipeline.yaml", "--steps", "validate").exit_code == 0
    run_id = next((project / "runs" / "tiny").iterdir()).name
    result = invoke("runs", "cancel", run_id)
    assert result.exit_code == 2
    assert "uses backend 'local', which runs no cloud job; stop a running local run with Ctrl-C" in result.stderr


def test_a_killed_process_leaves_a_state_resume_can_trust(quickstart: Path, fake_azure: Any) -> None:
    fake_azure.fail("events", crash=True, skip=1)
    killed = run()
    assert killed.exit_code == 137
    st = state(only_run(quickstart))
    assert st["status"] == "running" and st["steps"]["train"]["status"] == "running"  # nobody saved an ending
    job_id = st["resources"]["azure_job"]["id"]
    again = resume(st["run_id"])
    assert again.exit_code == 0, again.stderr
    assert list(fake_azure.jobs) == [job_id] and fake_azure.count("create_job") == 1
