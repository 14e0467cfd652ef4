"""Project-local plugins: ``plugins: [./my_metrics.py]`` in a pipeline file (and ``ftp --plugin FILE``).

A module next to the pipeline file adds a metric and a data check; they count when the file is read
(``evaluate.metrics`` and ``gate`` may name the metric, ``validate.no_todo`` is the check's section),
and every mistake is one line naming the file and key, exit 2.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import invoke

def doc_example() -> str:
    """The ``my_metrics.py`` of docs/plugins.md section 10: the tests run the documented module itself."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text(encoding="utf-8")
    return next(b for b in re.findall(r"```python\n(.*?)```", doc, flags=re.DOTALL) if b.startswith("# my_metrics.py"))


LOCAL_PLUGIN = doc_example()

USES_IT = """\
evaluate:
  metrics: [loss, exact_match, answer_chars]
  max_new_tokens: 12
gate:
  answer_chars: {max: 1000}
validate:
  no_todo: {severity: error}
"""


def with_plugin(project: Path, entry: str = "./my_metrics.py", body: str = LOCAL_PLUGIN, uses: str = USES_IT) -> Path:
    """The project's pipeline with ``plugins: [entry]`` first, the plugin at ``my_metrics.py``, a TODO in the data."""
    (project / "my_metrics.py").write_text(body, encoding="utf-8")
    pipeline = project / "pipeline.yaml"
    text = pipeline.read_text(encoding="utf-8").replace("evaluate:\n  metrics: [loss, exact_match]\n"
                                                        "  max_new_tokens: 12\n", "")
    pipeline.write_text(f"plugins: [{entry}]\n" + text + uses, encoding="utf-8")
    data = project / "data" / "train.jsonl"
    rows = data.read_text(encoding="utf-8").splitlines()
    rows[4] = rows[4].replace("Ticket 4", "Ticket 4 TODO")
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return pipeline


def test_validate_step_runs_the_local_check(project: Path) -> None:
    with_plugin(project)
    result = invoke("run", "pipeline.yaml", "--steps", "validate", "--json")
    assert result.exit_code == 2, result.output + result.stderr  # the check's finding is an error, as configured
    run_dir = next((project / "runs" / "tiny").iterdir())
    findings = json.loads((run_dir / "findings.json").read_text(encoding="utf-8"))
    todo = [f for f in findings if f["code"] == "todo"]
    assert [(f["plugin"], f["severity"], f["line"]) for f in todo] == [("my_metrics", "error", 5)]


def test_dry_run_shows_it_under_validate_and_evaluate(project: Path) -> None:
    with_plugin(project)
    result = invoke("run", "pipeline.yaml", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    assert "my_metrics" in result.output and "answer_chars" in result.output
    text = invoke("run", "pipeline.yaml", "--dry-run").output
    steps = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ")}
    assert "my_metrics" in steps["validate"] and "my_metrics" in steps["evaluate"]


def test_ftp_plugin_option_for_data_check(project: Path) -> None:
    with_plugin(project)
    result = invoke("--plugin", "my_metrics.py", "data", "check", "data/train.jsonl", "--json")
    findings = json.loads(result.output)["findings"]
    assert [(f["plugin"], f["line"]) for f in findings if f["code"] == "todo"] == [("my_metrics", 5)]
    from ftp.plugin_manager import reset_plugin_manager

    reset_plugin_manager()  # a new process, as far as plugins go
    without = json.loads(invoke("data", "check", "data/train.jsonl", "--json").output)["findings"]
    assert "todo" not in {f["code"] for f in without}


def test_without_the_plugin_its_names_are_unknown(project: Path) -> None:
    pipeline = with_plugin(project)
    pipeline.write_text(pipeline.read_text(encoding="utf-8").replace("plugins: [./my_metrics.py]\n", ""))
    result = invoke("validate", "pipeline.yaml")
    assert result.exit_code == 2
    assert "validate.no_todo: no installed validator plugin owns this section" in result.stderr


def error_of(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_a_missing_file_suggests_a_near_name(project: Path) -> None:
    with_plugin(project, entry="./my_metric.py")
    assert error_of("validate", "pipeline.yaml") == (
        "error: pipeline.yaml:1: plugins.0: ./my_metric.py: file not found; did you mean './my_metrics.py'?")


def test_a_module_that_fails_to_import(project: Path) -> None:
    with_plugin(project, body="import json\n\nRATIO = 1 / 0\n")
    line = error_of("run", "pipeline.yaml", "--dry-run")
    assert line == ("error: pipeline.yaml:1: plugins.0: ./my_metrics.py failed to import: ZeroDivisionError: "
                    "division by zero; fix the module; --debug shows the traceback")
    debug = invoke("--debug", "run", "pipeline.yaml", "--dry-run")
    assert "Traceback" in debug.stderr and "my_metrics.py\", line 3" in debug.stderr


@pytest.mark.parametrize("body, message", [
    ("RATIO = 0.5\n", "./my_metrics.py: defines no hook implementation; mark its functions with @hookimpl"),
    ("from ftp import hookimpl\n@hookimpl\ndef ftp_evalute(request):\n    return []\n",
     "./my_metrics.py: plugin 'my_metrics' implements unknown hook 'ftp_evalute'; did you mean 'ftp_evaluate'?"),
    ("from ftp import hookimpl\n@hookimpl\ndef ftp_evaluate(request, extra):\n    return []\n",
     "./my_metrics.py: Plugin 'my_metrics' for hook 'ftp_evaluate'"),
])
def test_a_module_without_usable_hooks(project: Path, body: str, message: str) -> None:
    with_plugin(project, body=body, uses="")
    assert error_of("validate", "pipeline.yaml").startswith(f"error: pipeline.yaml:1: plugins.0: {message}")


def test_plugins_must_be_a_list_of_files(project: Path) -> None:
    with_plugin(project, entry="./my_metrics.py, 3")  # a list, but not of file names
    assert error_of("validate", "pipeline.yaml").startswith("error: pipeline.yaml:1: plugins: must be a list of "
                                                            "Python files next to the pipeline file")


def test_set_cannot_name_plugins(project: Path) -> None:
    with_plugin(project)
    assert error_of("validate", "pipeline.yaml", "--set", "plugins=[./other.py]") == (
        "error: --set plugins: local plugins are loaded before overrides apply; list them in the pipeline file's "
        "plugins: key")


def test_the_option_names_itself_in_errors(project: Path) -> None:
    with_plugin(project)
    assert error_of("--plugin", "./my_metric.py", "data", "check", "data/train.jsonl") == (
        "error: --plugin: ./my_metric.py: file not found; did you mean './my_metrics.py'?")
