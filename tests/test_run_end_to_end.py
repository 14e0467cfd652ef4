"""``ftp run`` on a tiny random Llama: the whole pipeline, the run directory, resume, subsets,
gate failures, Ctrl-C, dry runs and the machine-readable output.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from conftest import invoke

from ftp import hookimpl
from ftp.types import Finding, ReviewRequest

RUN_FILES = ("pipeline.resolved.yaml", "state.json", "run.log", "metrics.jsonl", "loss_curve.png", "eval.json",
             "findings.json", "samples.md", "data/train.jsonl", "data/manifest.json", "model/adapter_config.json",
             "model/ftp_model.json", "model/tokenizer.json")


def only_run(project: Path) -> Path:
    runs = sorted((project / "runs" / "tiny").iterdir())
    assert len(runs) == 1
    return runs[0]


def state(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "state.json").read_text())


def test_full_run_leaves_a_complete_run_directory(project: Path) -> None:
    result = invoke("run", "pipeline.yaml", "--backend", "local", "--quiet")
    assert result.exit_code == 0, result.output + result.stderr
    run_dir = only_run(project)
    for name in RUN_FILES:
        assert (run_dir / name).exists(), name
    st = state(run_dir)
    assert st["status"] == "done"
    assert all(s["status"] == "done" and s["started_at"] and s["ended_at"] for s in st["steps"].values())

    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "train_loss" in r]
    assert len(train_rows) == st["steps"]["train"]["outputs"]["steps"] == 12
    assert all(r["tokens_per_s"] > 0 and r["lr"] > 0 for r in train_rows)
    assert any("eval_loss" in r for r in rows)

    report = json.loads((run_dir / "eval.json").read_text())
    assert set(report["metrics"]) == {"fine-tuned", "base"}
    assert set(report["metrics"]["base"]) == {"loss", "exact_match"}
    assert report["n"] == len(report["examples"]) == 6
    # The adapter learnt something: answer-token loss on the test split is below the base model's.
    assert report["metrics"]["fine-tuned"]["loss"] < report["metrics"]["base"]["loss"]

    split = st["steps"]["split"]["outputs"]
    assert (split["train"]["examples"], split["validation"]["examples"], split["test"]["examples"]) == (48, 6, 6)
    assert "secret" not in (run_dir / "pipeline.resolved.yaml").read_text()
    assert "step validate" not in (run_dir / "run.log").read_text() and "step_done" in (run_dir / "run.log").read_text()


def test_registry_and_deployment_records(project: Path) -> None:
    assert invoke("run", "pipeline.yaml", "--quiet").exit_code == 0
    assert invoke("run", "pipeline.yaml", "--quiet", "--set", "deploy.traffic.new=10").exit_code == 0
    listed = json.loads(invoke("models", "list", "--json", "--registry", ".ftp/registry.db").output)
    assert [v["version"] for v in listed] == [1, 2]
    v1 = listed[0]
    assert v1["name"] == "tiny-model" and v1["backend"] == "local"
    assert set(v1["data_sha256"]) == {"source", "train", "validation", "test"}
    assert v1["hyperparameters"]["lora"]["r"] == 8 and v1["hyperparameters"]["learning_rate"] == 3e-3
    assert set(v1["metrics"]["test"]) == {"fine-tuned", "base"}
    assert v1["model"]["kind"] == "adapter" and Path(v1["model"]["path"], "adapter_config.json").exists()
    assert v1["pipeline_sha256"] and v1["code_version"].startswith("ftp ")
    shown = json.loads(invoke("models", "show", "tiny-model:1", "--json", "--pipeline", "pipeline.yaml").output)
    assert shown == v1
    missing = invoke("models", "show", "other", "--registry", ".ftp/registry.db")
    assert missing.exit_code == 2 and "models: tiny-model" in missing.stderr

    with sqlite3.connect(project / ".ftp" / "deployments.db") as db:
        slots = dict(db.execute("SELECT slot, version || ':' || traffic FROM slots WHERE name='tiny-model'"))
    assert slots == {"blue": "1:90", "green": "2:10"}  # blue-green: the new version starts at 10%


def test_gate_failure_stops_before_register_with_exit_1(project: Path) -> None:
    result = invoke("run", "pipeline.yaml", "--quiet", "--set", "gate.exact_match.min_gain_over_base=0.5")
    assert result.exit_code == 1
    assert "gate: exact_match gain over base" in result.stderr and "required 0.5" in result.stderr
    st = state(only_run(project))
    assert st["steps"]["gate"]["status"] == "failed"
    assert st["steps"]["register"]["status"] == "pending"
    assert not (project / ".ftp" / "registry.db").exists()


def test_steps_subset_then_resume_skips_done_steps(project: Path) -> None:
    result = invoke("run", "pipeline.yaml", "--quiet", "--steps", "validate,split,train")
    assert result.exit_code == 0, result.stderr
    run_dir = only_run(project)
    first = state(run_dir)
    assert [s for s, v in first["steps"].items() if v["status"] == "done"] == ["validate", "split", "train"]
    assert first["steps"]["evaluate"]["status"] == "pending" and first["status"] == "partial"

    result = invoke("run", "--resume", run_dir.name, "--json")
    assert result.exit_code == 0, result.stderr
    events = [json.loads(line) for line in result.output.splitlines()]
    skipped = [e["step"] for e in events if e["event"] == "step_skipped"]
    assert skipped == ["validate", "split", "train"]
    after = state(run_dir)
    assert after["status"] == "done"
    assert after["steps"]["train"]["started_at"] == first["steps"]["train"]["started_at"]  # not trained twice
    assert (run_dir / "eval.json").exists()


def test_steps_that_need_missing_outputs_are_refused(project: Path) -> None:
    result = invoke("run", "pipeline.yaml", "--steps", "train")
    assert result.exit_code == 2
    assert "'train' needs the output of 'split'" in result.stderr
    assert not (project / "runs").exists()  # refused before any run directory was made
    assert "unknown step 'trian'; did you mean 'train'?" in invoke("run", "pipeline.yaml", "--steps", "trian").stderr


def test_ctrl_c_leaves_a_resumable_run(project: Path, pm: Any) -> None:
    class Interrupt:
        @hookimpl
        def ftp_review(self, request: ReviewRequest) -> list:
            raise KeyboardInterrupt

    pm.register(Interrupt(), name="ctrl-c")
    result = invoke("run", "pipeline.yaml", "--quiet")
    assert result.exit_code == 130
    run_dir = only_run(project)
    assert f"ftp run --resume {run_dir.name}" in result.stderr
    st = state(run_dir)
    assert st["status"] == "interrupted" and st["steps"]["review"]["status"] == "interrupted"
    assert st["steps"]["train"]["status"] == "done"

    pm.unregister(name="ctrl-c")
    result = invoke("run", "--resume", run_dir.name[:17], "--quiet")  # a unique prefix is enough
    assert result.exit_code == 0, result.stderr
    assert state(run_dir)["status"] == "done"


def test_validation_errors_stop_before_training_with_exit_2(project: Path) -> None:
    bad = project / "data" / "train.jsonl"
    bad.write_text(bad.read_text() + '{"messages": [{"role": "user", "content": "no answer"}]}\nnot json\n')
    result = invoke("run", "pipeline.yaml")
    assert result.exit_code == 2
    assert "train.jsonl:61: error: no assistant message" in result.output
    assert "train.jsonl:62: error: not valid JSON" in result.output
    st = state(only_run(project))
    assert st["steps"]["validate"]["status"] == "failed" and st["steps"]["train"]["status"] == "pending"
    findings = json.loads((only_run(project) / "findings.json").read_text())
    assert {(f["line"], f["plugin"]) for f in findings if f["severity"] == "error"} == {
        (61, "ftp.plugins.chat_format"), (62, "ftp.plugins.hygiene")}


def test_inline_plugin_validator_runs_and_is_named(project: Path, pm: Any) -> None:
    class Shouty:
        @hookimpl
        def ftp_validate_data(self, data: Any, settings: dict[str, Any]) -> list[Finding]:
            return [Finding(severity="warning", code="shout", message=f"{data.train.examples} rows", file="x")]

    pm.register(Shouty(), name="shouty")
    result = invoke("validate", "pipeline.yaml", "--json")
    assert result.exit_code == 0
    findings = json.loads(result.output)["findings"]
    assert {"severity": "warning", "code": "shout", "message": "60 rows", "file": "x", "line": None, "hint": None,
            "plugin": "shouty"} in findings


def test_dry_run_names_the_handlers_and_creates_nothing(project: Path) -> None:
    result = invoke("run", "pipeline.yaml", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.output)
    assert plan["steps"]["train"]["component"] == "local-peft"
    assert plan["steps"]["register"]["component"] == "sqlite"
    assert "ftp.plugins.chat_format" in plan["steps"]["validate"]["plugins"]
    assert "name: tiny" in plan["settings"]
    assert not (project / "runs").exists() and not (project / ".ftp").exists()
    text = invoke("run", "pipeline.yaml", "--dry-run").output
    assert "train     local-peft  (lora on" in text


def test_json_events_and_runs_commands(project: Path) -> None:
    result = invoke("run", "pipeline.yaml", "--json", "--steps", "validate,split")
    events = [json.loads(line) for line in result.output.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished"
    assert kinds.count("step_done") == 2
    run_id = events[0]["run_id"]
    listed = json.loads(invoke("runs", "list", "--json").output)
    assert [r["run_id"] for r in listed] == [run_id]
    shown = json.loads(invoke("runs", "show", run_id, "--json").output)
    assert shown["steps"]["split"]["status"] == "done"
    assert "validate" in invoke("runs", "show", run_id).output
    missing = invoke("runs", "show", "nope")
    assert missing.exit_code == 2 and "ftp runs list" in missing.stderr


def test_quiet_prints_nothing(project: Path) -> None:
    result = invoke("run", "pipeline.yaml", "--quiet", "--steps", "validate,split")
    assert result.exit_code == 0 and result.output == ""


def test_sigint_during_training_then_resume(project: Path) -> None:
    """A real Ctrl-C (SIGINT) in the middle of training: exit 130, state says where, resume finishes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    # A terminal's Ctrl-C: SIGINT handled by default even when this test runs in a background job, whose
    # children a shell starts with SIGINT ignored (Python then keeps ignoring it).
    proc = subprocess.Popen([sys.executable, "-m", "ftp", "run", "pipeline.yaml", "--quiet", "--set", "train.epochs=400",
                             "--set", "train.early_stopping=null"], cwd=project, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300  # generous: CI machines can be slow to start torch
    metrics = None
    while time.time() < deadline and proc.poll() is None:
        found = list((project / "runs").glob("tiny/*/metrics.jsonl")) if (project / "runs").exists() else []
        if found and found[0].read_text().count("train_loss") >= 3:
            metrics = found[0]
            break
        time.sleep(0.2)
    assert metrics is not None, "training never started"
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=180)  # a loaded 2-core machine can take a while to write the state
    assert proc.returncode == 130, err
    run_dir = metrics.parent
    st = state(run_dir)
    assert st["status"] == "interrupted" and st["steps"]["train"]["status"] == "interrupted"
    assert f"ftp run --resume {run_dir.name}" in err and "Traceback" not in err
    result = invoke("run", "--resume", run_dir.name, "--quiet", "--set", "train.epochs=1")
    assert result.exit_code == 2 and "--set cannot change a run being resumed" in result.stderr
