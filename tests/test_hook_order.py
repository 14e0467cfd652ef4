"""The order of hook calls in a whole run, pinned from ``FTP_TRACE_PLUGINS`` output.

Plugins rely on it (a declaration before the file is read, a trainer before the first step, the gate
after every evaluator), so a change of order must be deliberate: this test then shows the new sequence
to copy here, and docs/plugin-hooks.md's paragraph on the order may need the same change. The trace
logs a call that reached at least one plugin; consecutive repeats (collect-all hooks are called one
plugin at a time) count once.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from conftest import invoke

STEPS = "validate,split,train,evaluate,gate,register,deploy"
FAST = ("train.max_steps=2", "evaluate.max_examples=2", "evaluate.max_new_tokens=4")

EXPECTED = [
    # reading the pipeline file: what plugins declare, then the trainer's preflight
    "ftp_backends", "ftp_config_sections", "ftp_metrics", "ftp_trainer",
    # validate: the backend's limits and tokenizer, then the streaming data checks
    "ftp_backends", "ftp_token_counter", "ftp_data_checks",
    # validate's advice (training prices), then split; train calls no hook (the trainer is already known)
    "ftp_backends", "ftp_split",
    # evaluate, gate, register, deploy (then the registry again: deploy.alias follows the version it gave
    # all the traffic; the smoke test, off in the tests' pipeline, would call ftp_serving_engine first)
    "ftp_evaluate", "ftp_compare", "ftp_gate", "ftp_model_registry", "ftp_deployer", "ftp_model_registry",
]


def collapse(names: list[str]) -> list[str]:
    return [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]


def test_a_whole_run_calls_hooks_in_this_order(project: Path, monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("FTP_TRACE_PLUGINS", "1")  # read when the plugin manager is built, in the run below
    args = [a for assignment in FAST for a in ("--set", assignment)]
    with caplog.at_level(logging.WARNING, logger="ftp.trace"):
        result = invoke("run", "pipeline.yaml", "--quiet", "--steps", STEPS, *args)
    assert result.exit_code == 0, result.stderr
    calls = [r.getMessage() for r in caplog.records if r.name == "ftp.trace"]
    assert all(c.startswith("hook ftp_") for c in calls), calls
    assert collapse([c.split()[1] for c in calls]) == EXPECTED
