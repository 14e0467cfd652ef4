"""A real third-party package: installed with pip, discovered through the ``ftp`` entry point,
listed by ``ftp plugins`` and called by ``ftp run`` (its validator and its evaluator).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "examples" / "ftp-plugin-example"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(target), str(PACKAGE)], check=True, capture_output=True, text=True)
    return target


def ftp(site: Path, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(site), **env}
    for var in ("FTP_LOAD_PLUGINS", "FTP_DISABLE_PLUGINS"):
        if var not in env:
            environ.pop(var, None)
    return subprocess.run([sys.executable, "-m", "ftp", *args], capture_output=True, text=True, env=environ, cwd=cwd)


def listed(site: Path, **env: str) -> dict[str, dict]:
    return {p["name"]: p for p in json.loads(ftp(site, "plugins", "--json", **env).stdout)}


def test_ftp_plugins_lists_the_installed_package(site: Path) -> None:
    plugin = listed(site)["example"]
    assert plugin["version"] == "0.1.0" and plugin["distribution"] == "ftp-plugin-example"
    assert plugin["builtin"] is False
    assert plugin["hooks"] == ["ftp_config_sections", "ftp_evaluate", "ftp_metrics", "ftp_validate_data"]


def test_env_switches_hide_it(site: Path) -> None:
    assert "example" not in listed(site, FTP_DISABLE_PLUGINS="example")
    assert "example" not in listed(site, FTP_LOAD_PLUGINS="")
    assert "example" in listed(site, FTP_LOAD_PLUGINS="example")
    assert "ftp.plugins.split" in listed(site, FTP_LOAD_PLUGINS="")  # built-ins always load


def test_ftp_run_calls_its_validator_and_evaluator(site: Path, project: Path) -> None:
    pipeline = project / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text() + "validate:\n  answer_length: {max_words: 1}\n", encoding="utf-8")
    proc = ftp(site, "run", "pipeline.yaml", "--json", "--set", "evaluate.metrics=[loss,exact_match,answer_words]",
               cwd=project)
    assert proc.returncode == 0, proc.stderr
    run_dir = Path(json.loads(proc.stdout.splitlines()[0])["run_dir"])
    if not run_dir.is_absolute():
        run_dir = project / run_dir
    findings = json.loads((run_dir / "findings.json").read_text())
    mine = [f for f in findings if f["plugin"] == "example"]
    assert len(mine) == 60 and mine[0]["line"] == 1 and mine[0]["severity"] == "warning"
    assert "has 2 words (max_words 1)" in mine[0]["message"]
    metrics = json.loads((run_dir / "eval.json").read_text())["metrics"]
    assert "answer_words" in metrics["fine-tuned"] and "answer_words" in metrics["base"]


def test_a_misspelt_key_in_its_section_is_a_one_line_error(site: Path, project: Path) -> None:
    pipeline = project / "pipeline.yaml"
    pipeline.write_text(pipeline.read_text() + "validate:\n  answer_length: {max_wrds: 1}\n", encoding="utf-8")
    proc = ftp(site, "validate", "pipeline.yaml", cwd=project)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: pipeline.yaml:{len(pipeline.read_text().splitlines())}: validate.answer_length.max_wrds: "
        "unknown key; did you mean 'max_words'?"]
