"""``run_pipeline``: the programmatic entry point ``ftp run`` itself uses (a retraining trigger calls it too)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftp.errors import StepFailed, UserError
from ftp.run.pipeline import run_pipeline


def test_a_run_from_code_then_its_resume(project: Path) -> None:
    first = run_pipeline("pipeline.yaml", steps=["validate", "split"], overrides=["train.epochs=1"])
    state = json.loads((first.path / "state.json").read_text())
    assert state["status"] == "partial" and state["overrides"] == ["train.epochs=1"]
    assert [s for s, st in state["steps"].items() if st["status"] == "done"] == ["validate", "split"]
    assert first.path.parent.resolve() == project / "runs" / "tiny"

    again = run_pipeline(None, steps=["validate", "split", "train"], resume=first.run_id)
    assert again.path == first.path
    resumed = json.loads((again.path / "state.json").read_text())
    assert resumed["steps"]["train"]["status"] == "done" and resumed["steps"]["train"]["outputs"]["epochs"] == 1


def test_errors_are_the_clis(project: Path) -> None:
    with pytest.raises(UserError, match="give a pipeline file"):
        run_pipeline(None)
    with pytest.raises(UserError, match="--steps: unknown step 'trian'"):
        run_pipeline("pipeline.yaml", steps=["trian"])
    with pytest.raises(StepFailed, match="gate"):
        run_pipeline("pipeline.yaml", steps=["validate", "split", "train", "evaluate", "gate"],
                     overrides=["gate.exact_match.min_gain_over_base=0.5"])
    assert not (project / ".ftp" / "registry.db").exists()
