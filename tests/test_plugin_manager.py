"""The plugin manager: built-ins as plugins, env switches, start-up checks, tracing, the CLI listing."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from typing import Any

import pytest
from conftest import invoke

from ftp import hookimpl
from ftp.errors import FtpError
from ftp.hooks import Hooks
from ftp.plugin_manager import BUILTIN_PLUGINS, build_plugin_manager, check
from ftp.types import EvalRequest, Metric, MetricSpec


def names(pm: Any) -> set[str]:
    return {name for name, _ in pm.list_name_plugin()}


def test_builtins_register_like_any_plugin() -> None:
    pm, infos = build_plugin_manager()
    assert set(BUILTIN_PLUGINS) <= names(pm)
    assert all(infos[n].builtin for n in BUILTIN_PLUGINS)
    hooks = Hooks(pm)
    assert set(hooks.backends()) == {"local", "azure"}
    assert {"loss", "perplexity", "exact_match"} <= set(hooks.metrics())


def test_disable_by_full_or_short_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTP_DISABLE_PLUGINS", "ftp.plugins.gate, quantity")
    pm, _ = build_plugin_manager()
    assert "ftp.plugins.gate" not in names(pm) and "ftp.plugins.quantity" not in names(pm)
    assert "ftp.plugins.split" in names(pm)


def test_load_plugins_empty_keeps_builtins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTP_LOAD_PLUGINS", "")
    pm, _ = build_plugin_manager()
    assert set(BUILTIN_PLUGINS) == names(pm)


def test_misspelt_hook_is_an_error_at_start_up(pm: Any) -> None:
    class Typo:
        @hookimpl
        def ftp_evalute(self, request: Any) -> list:
            return []

    pm.register(Typo(), name="typo")
    with pytest.raises(FtpError, match=r"plugin .typo. implements unknown hook .ftp_evalute.; did you mean .ftp_evaluate.\?"):
        check(pm)


def test_trace_logs_each_hook_call_and_duration(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("FTP_TRACE_PLUGINS", "1")
    pm, _ = build_plugin_manager()
    with caplog.at_level(logging.WARNING, logger="ftp.trace"):
        Hooks(pm).backends()
    assert any("hook ftp_backends -> [ftp.backends.local,ftp.backends.azure]" in r.getMessage() and " ms" in r.getMessage()
               for r in caplog.records)


def test_collect_all_answers_are_stamped_with_their_plugin(pm: Any) -> None:
    class Extra:
        @hookimpl
        def ftp_metrics(self) -> list[MetricSpec]:
            return [MetricSpec(name="brevity", description="short answers")]

        @hookimpl
        def ftp_evaluate(self, request: EvalRequest) -> list[Metric]:
            return [Metric(name="brevity", value=1.0, candidate=request.candidate, n=1)]

    pm.register(Extra(), name="extra")
    hooks = Hooks(pm)
    assert "brevity" in hooks.metrics()
    request = EvalRequest(candidate="base", model={"kind": "base", "base": "m", "backend": "local"}, examples=[],
                          predictions=["a"], references=["a"], metrics=["exact_match", "brevity"])
    got = {(m.name, m.plugin) for m in hooks.evaluate(request)}
    assert got == {("brevity", "extra"), ("exact_match", "ftp.plugins.metrics")}


def test_ftp_plugins_json_lists_hooks() -> None:
    result = invoke("plugins", "--json")
    table = {p["name"]: p for p in json.loads(result.output)}
    assert table["ftp.backends.local"]["hooks"] == ["ftp_backends", "ftp_predictor", "ftp_serving_engine", "ftp_token_counter", "ftp_trainer"]
    assert table["ftp.plugins.metrics"]["version"] and table["ftp.plugins.metrics"]["builtin"]
    assert "ftp_review" in invoke("plugins").output


def test_help_is_instant_and_imports_nothing_heavy() -> None:
    code = ("import sys, time; t = time.perf_counter(); from ftp.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'azure', 'pydantic', 'rich', 'numpy') if m in sys.modules]\n"
            "print('HEAVY', heavy, time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    line = out.strip().splitlines()[-1]
    assert line.startswith("HEAVY [] "), line
    assert float(line.split()[-1]) < 1.0


@pytest.mark.parametrize("command", [["plugins"], ["validate", "--help"], ["runs", "list"]])
def test_light_commands_do_not_import_torch(command: list[str], tmp_path: Any) -> None:
    code = (f"import sys\nfrom ftp.cli import main\ntry:\n    main({command!r})\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', 'torch' in sys.modules, 'transformers' in sys.modules, 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path).stdout
    assert out.strip().splitlines()[-1] == "HEAVY False False False"  # numpy: only once a data check runs


def test_python_dash_m_ftp() -> None:
    out = subprocess.run([sys.executable, "-m", "ftp", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ftp, version 0.1.0"


@pytest.mark.parametrize("body, expected", [
    ("from ftp import hookimpl\n@hookimpl\ndef ftp_evaluate(request, bogus):\n    return []\n",
     "error: plugin 'badplug': "),
    ("raise ImportError('no module named torchx')\n",
     "error: plugin 'badplug' (badplug) failed to import: no module named torchx"),
])
def test_a_broken_installed_plugin_is_one_line(tmp_path: Any, body: str, expected: str) -> None:
    """An installed package with a bad hook signature or a failing import: a one-line error, no traceback."""
    import os

    (tmp_path / "badplug.py").write_text(body, encoding="utf-8")
    info = tmp_path / "badplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: badplug\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[ftp]\nbadplug = badplug\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "ftp", "plugins"], capture_output=True, text=True, env=env)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected) and "Traceback" not in proc.stderr
