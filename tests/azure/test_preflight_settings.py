"""Azure refuses training settings it cannot honour before any step runs, and warns about those it ignores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import invoke


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_a_fractional_epoch_count_is_refused_at_validate_naming_its_line(quickstart: Path, fake_azure: Any,
                                                                        monkeypatch: Any) -> None:
    monkeypatch.setenv("QUICKSTART_EPOCHS", "2.5")
    result = invoke("validate", "pipeline.yaml", "--backend", "azure")
    assert result.exit_code == 2 and "Traceback" not in result.output + result.stderr
    line = line_of(quickstart / "pipeline.yaml", "epochs:")
    assert f"pipeline.yaml:{line}: train.epochs: Azure takes a whole number of epochs (1 or more), got 2.5" in result.stderr
    # the same file runs locally: fractional epochs are the local trainer's to honour
    assert invoke("validate", "pipeline.yaml", "--backend", "local").exit_code == 0


def test_settings_azure_ignores_are_warned_about_with_their_line_and_what_to_use(quickstart: Path,
                                                                                fake_azure: Any) -> None:
    result = invoke("validate", "pipeline.yaml", "--backend", "azure")
    assert result.exit_code == 0, result.stderr
    path = quickstart / "pipeline.yaml"
    assert (f"pipeline.yaml:{line_of(path, 'learning_rate: 5e-4')}: train.learning_rate: ignored by Azure OpenAI "
            "fine-tuning (set backends.azure.learning_rate_multiplier instead)") in result.stderr
    assert f"pipeline.yaml:{line_of(path, 'lora: {r: 16')}: train.lora: ignored by Azure OpenAI" in result.stderr
    assert "train.epochs: ignored" not in result.stderr and "train.method" not in result.stderr
    as_json = json.loads(invoke("validate", "pipeline.yaml", "--backend", "azure", "--json").output)
    assert {w.split(": ")[1] for w in as_json["settings_warnings"]} == {
        "train.early_stopping", "train.learning_rate", "train.lora"}
    # a run says so too, before the first step
    dry = invoke("run", "pipeline.yaml", "--backend", "azure", "--dry-run")
    assert dry.exit_code == 0 and "warning: " in dry.output and "train.learning_rate: ignored" in dry.output
