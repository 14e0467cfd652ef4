"""``ftp eval`` on any model reference, and the champion candidate: the report a run writes, from the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import invoke, make_examples, write_jsonl


def run_all(project: Path, *args: str) -> Path:
    """The new run's folder (found by difference: two tiny runs can start within one second, and run ids
    of one second do not sort by time)."""
    runs = project / "runs" / "tiny"
    before = set(runs.iterdir()) if runs.exists() else set()
    result = invoke("run", "pipeline.yaml", "--quiet", *args)
    assert result.exit_code == 0, result.output + result.stderr
    (made,) = set(runs.iterdir()) - before
    return made


def eval_json(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "eval.json").read_text(encoding="utf-8"))


def test_ftp_eval_scores_a_registered_version_a_run_and_a_folder_alike(project: Path) -> None:
    run_dir = run_all(project)
    test = write_jsonl(project / "held_out.jsonl", make_examples(12, seed=7))
    reports = {}
    for ref in ("tiny-model:1", run_dir.name, str(run_dir / "model"), "tiny-model"):
        out = project / "reports" / ref.replace("/", "_").replace(":", "_")
        result = invoke("eval", ref, "--data", str(test), "--report", str(out), "--json")
        assert result.exit_code == 0, result.output + result.stderr
        printed = json.loads(result.output)
        assert printed["report"] == str(out / "eval.json")
        reports[ref] = eval_json(out)
    first = reports["tiny-model:1"]
    assert first["candidates"] == ["fine-tuned", "base"] and first["n"] == 12
    # the same model and data give the same answers and numbers, whichever way the model is named
    assert all(r["metrics"] == first["metrics"] for r in reports.values())
    assert all(r["examples"] == first["examples"] for r in reports.values())
    # auto-chosen metrics for JSON answers, said in the report
    chosen = first["metrics_chosen"]
    assert chosen["auto"] and "JSON" in chosen["reason"] and "field_accuracy" in chosen["names"]
    assert first["answer_format"]["kind"] == "json" and first["answer_format"]["keys"] == ["colour"]
    assert first["data"]["examples"] == 12 and len(first["data"]["sha256"]) == 64
    rows = [json.loads(line) for line in (project / "reports" / "tiny-model_1" / "eval" / "examples.jsonl")
            .read_text().splitlines()]
    assert len(rows) == 24 and {r["candidate"] for r in rows} == {"fine-tuned", "base"}
    assert all("exact_match" in r["scores"] for r in rows)
    assert (project / "reports" / "tiny-model_1" / "eval.html").exists()


def test_ftp_eval_errors_are_one_line_with_exit_code_2(project: Path) -> None:
    test = write_jsonl(project / "t.jsonl", make_examples(3))
    for args, needle in [(("nope:1", "--data", str(test)), "no model 'nope:1'"),
                         (("nothing-here", "--data", str(test)), "not a model folder, a run"),
                         (("x:1", "--data", "missing.jsonl"), "no model"),
                         (("x:1", "--data", str(test), "--compare", "bse"), "unknown candidate 'bse'")]:
        result = invoke("eval", *args)
        assert result.exit_code == 2, result.output
        assert needle in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_a_new_run_is_compared_with_the_live_champion(project: Path) -> None:
    first = run_all(project)
    assert json.loads((first / "state.json").read_text())["steps"]["deploy"]["status"] == "done"
    second = run_all(project, "--set", "evaluate.compare_to=[base, champion]", "--set", "train.seed=5")
    report = eval_json(second)
    assert report["candidates"] == ["fine-tuned", "base", "champion"]
    vs = {c["baseline"] for c in report["comparisons"] if c["metric"] == "exact_match"}
    assert vs == {"base", "champion"}
    # the champion's answers are the first run's model's: the same as evaluating tiny-model:1 now
    out = project / "champion-check"
    result = invoke("eval", "tiny-model:1", "--data", str(second / "data" / "test.jsonl"), "--report", str(out),
                    "--compare", "none", "--pipeline", "pipeline.yaml")
    assert result.exit_code == 0, result.output + result.stderr
    assert [e["fine-tuned"] for e in eval_json(out)["examples"]] == [e["champion"] for e in report["examples"]]


def test_no_champion_yet_is_said_not_failed(project: Path) -> None:
    run_dir = run_all(project, "--steps", "validate,split,train,evaluate", "--set",
                      "evaluate.compare_to=[base, champion]")
    report = eval_json(run_dir)
    assert report["candidates"] == ["fine-tuned", "base"]
    assert "no version of tiny-model holds the champion alias or is deployed yet" in report["not_evaluated"]["champion"]
