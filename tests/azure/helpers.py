"""What the Azure tests share: the options every run uses, and run inspection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# No real waiting: polls and retries wait 0 s of the fake clock (Retry-After still shows in its record).
FAST = ("--set", "backends.azure.poll.interval=0", "--set", "backends.azure.retry.base_delay=0")
# The fake is not a model (every answer is the same fixed text), so no gate on answer quality can pass,
# nor the deploy step's smoke test (answers in the data's format); tests/azure/test_azure_serving.py
# drives the serving engine that smoke test uses.
RELAXED = ("--set", "gate={}", "--set", "deploy.smoke_test=0")


def run_dirs(root: Path) -> list[Path]:
    folder = root / "runs" / "ticket-triage"
    return sorted(folder.iterdir()) if folder.exists() else []


def only_run(root: Path) -> Path:
    runs = run_dirs(root)
    assert len(runs) == 1, runs
    return runs[0]


def state(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "state.json").read_text())
