"""A real third-party package: installed with pip, discovered through the ``ftp`` entry point, listed by
``ftp plugins``, hidden by the environment switches, called by ``ftp run`` (validator and evaluator), and
adding a command (``ftp answer-words``).

The CLI runs in a subprocess with ``PYTHONPATH`` pointing at the install target, so discovery goes
through ``importlib.metadata`` exactly as it does for a user's ``pip install``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import invoke

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "examples" / "ftp-plugin-example"
RUN_METRICS = "evaluate.metrics=[loss,exact_match,answer_words]"
LONG_LINES = (7, 42)  # 1-based lines of data/train.jsonl that get a long answer


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install --target`` of the example package, offline; built from a copy so the source tree
    gets no build/ or egg-info folders."""
    work = tmp_path_factory.mktemp("plugin-install")
    source = work / "src"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                           "--no-build-isolation", "--no-index", "--target", str(target), str(source)],
                          check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return target


def ftp(site: Path, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m ftp ARGS`` with the install target on the path and only the switches given in ``env``."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ("FTP_LOAD_PLUGINS", "FTP_DISABLE_PLUGINS", "FTP_TRACE_PLUGINS", "FTP_RUNS_DIR")}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "ftp", *args], check=False, capture_output=True, text=True,
                          env=environ, cwd=cwd, timeout=300)


def listed(site: Path, **env: str) -> dict[str, dict[str, Any]]:
    proc = ftp(site, "plugins", "--json", **env)
    assert proc.returncode == 0, proc.stderr
    return {p["name"]: p for p in json.loads(proc.stdout)}


def add_section(project: Path, yaml_text: str) -> Path:
    pipeline = project / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text(encoding="utf-8") + yaml_text, encoding="utf-8")
    return pipeline


def lengthen_answers(project: Path) -> None:
    """Give a few training examples an 8-word answer; the others are 2 words (``{"colour": "red"}``)."""
    data = project / "data" / "train.jsonl"
    rows = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    for number in LONG_LINES:
        colour = json.loads(rows[number - 1]["messages"][-1]["content"])["colour"]
        rows[number - 1]["messages"][-1]["content"] = json.dumps({"colour": colour,
                                                                  "note": "the customer says it flickers"})
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_ftp_plugins_lists_the_installed_package(site: Path) -> None:
    plugin = listed(site)["example"]
    assert plugin["version"] == "0.1.0"
    assert plugin["distribution"] == "ftp-plugin-example"
    assert plugin["builtin"] is False
    assert plugin["hooks"] == ["ftp_commands", "ftp_config_sections", "ftp_evaluate", "ftp_metrics",
                               "ftp_validate_data"]


def test_its_command_is_listed_and_runs(site: Path, project: Path) -> None:
    """``ftp_commands``: ``ftp --help`` lists the plugin's command and ``ftp answer-words`` runs it."""
    lengthen_answers(project)
    helped = ftp(site, "--help")
    assert helped.returncode == 0 and "answer-words" in helped.stdout, helped.stderr
    proc = ftp(site, "answer-words", "data/train.jsonl", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "60 answers; words: min 2, median 2, max 8"
    assert "answer-words" not in ftp(site, "--help", FTP_DISABLE_PLUGINS="example").stdout


def test_env_switches_hide_it(site: Path) -> None:
    assert "example" not in listed(site, FTP_DISABLE_PLUGINS="example")
    assert "example" not in listed(site, FTP_LOAD_PLUGINS="")
    only = listed(site, FTP_LOAD_PLUGINS="example")
    assert "example" in only
    assert "ftp.plugins.split" in only and "ftp.plugins.split" in listed(site, FTP_LOAD_PLUGINS="")  # built-ins stay


def test_ftp_run_calls_its_validator_and_evaluator(site: Path, project: Path) -> None:
    lengthen_answers(project)
    add_section(project, "validate:\n  answer_length: {max_words: 3}\n")
    proc = ftp(site, "run", "pipeline.yaml", "--backend", "local", "--json", "--set", RUN_METRICS, cwd=project)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    run_dir = Path(next(e["run_dir"] for e in events if e["event"] == "run_started"))
    run_dir = run_dir if run_dir.is_absolute() else project / run_dir

    findings = json.loads((run_dir / "findings.json").read_text(encoding="utf-8"))
    mine = [f for f in findings if f["plugin"] == "example"]
    assert [f["line"] for f in mine] == list(LONG_LINES)
    assert {f["severity"] for f in mine} == {"warning"} and {f["code"] for f in mine} == {"long-answer"}
    assert all(Path(f["file"]).name == "train.jsonl" for f in mine)
    assert "has 8 words; max_words is 3" in mine[0]["message"]
    assert any(e["event"] == "finding" and "long-answer" in e["text"] for e in events)  # reported, too

    metrics = json.loads((run_dir / "eval.json").read_text(encoding="utf-8"))["metrics"]
    for candidate in ("fine-tuned", "base"):
        assert metrics[candidate]["answer_words"] >= 0
        assert {"loss", "exact_match"} <= metrics[candidate].keys()


def test_a_misspelt_key_in_its_section_is_a_one_line_error(site: Path, project: Path) -> None:
    pipeline = add_section(project, "validate:\n  answer_length: {max_wrds: 3}\n")
    proc = ftp(site, "run", "pipeline.yaml", "--backend", "local", cwd=project)
    assert proc.returncode == 2
    line = len(pipeline.read_text(encoding="utf-8").splitlines())
    assert proc.stderr.strip().splitlines() == [
        f"error: pipeline.yaml:{line}: validate.answer_length.max_wrds: unknown key; did you mean 'max_words'?"]
    assert not (project / "runs").exists()  # refused before a run directory exists


def test_a_misspelt_section_name_suggests_the_plugins_section(site: Path, project: Path) -> None:
    add_section(project, "validate:\n  answer_lenght: {max_words: 3}\n")
    proc = ftp(site, "validate", "pipeline.yaml", cwd=project)
    assert proc.returncode == 2
    assert "validate.answer_lenght: no installed validator plugin owns this section; did you mean " \
           "'answer_length'?" in proc.stderr


def test_inline_registration(site: Path, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other way to test a plugin (docs/plugins.md): register its module on the plugin manager."""
    from ftp.plugin_manager import check, get_plugin_manager, reset_plugin_manager

    monkeypatch.syspath_prepend(str(site))
    import ftp_plugin_example

    monkeypatch.setenv("FTP_LOAD_PLUGINS", "")  # not through the entry point (nor a `pip install -e` copy)
    reset_plugin_manager()  # the autouse fresh_plugins fixture resets it again afterwards
    pm = get_plugin_manager()
    pm.register(ftp_plugin_example, name="example")
    check(pm)
    lengthen_answers(project)
    add_section(project, "validate:\n  answer_length: {max_words: 3, severity: error}\n")
    result = invoke("validate", "pipeline.yaml", "--json")
    assert result.exit_code == 2, result.output
    errors = [f for f in json.loads(result.output)["findings"] if f["plugin"] == "example"]
    assert [(f["severity"], f["line"]) for f in errors] == [("error", n) for n in LONG_LINES]
