"""``ftp_predictor``: a model from a finished run answers without the trainer that trained it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import TrainCtx, invoke

from ftp import hookimpl
from ftp.errors import UserError
from ftp.hooks import default_hooks
from ftp.types import ModelRef, TrainResult


class OutsideARun(TrainCtx):
    """What a server or a judge would pass: no pipeline, so no settings."""

    def setting(self, path: str) -> Any:
        return None


def test_a_runs_adapter_and_base_answer_through_the_hook_as_in_its_evaluation(project: Path) -> None:
    assert invoke("run", "pipeline.yaml", "--quiet", "--steps", "validate,split,train,evaluate").exit_code == 0
    run_dir = next((project / "runs" / "tiny").iterdir())
    state = json.loads((run_dir / "state.json").read_text())
    model = TrainResult.model_validate(state["steps"]["train"]["outputs"]).model
    report = json.loads((run_dir / "eval.json").read_text())
    test = [json.loads(line) for line in (run_dir / "data" / "test.jsonl").read_text().splitlines()]

    hooks = default_hooks()  # a fresh plugin manager: nothing of the run's trainer is in memory
    ctx = OutsideARun(project, {"devices": "cpu"})
    tuned = hooks.predictor(model, ctx)
    base = hooks.predictor(ModelRef(kind="base", base=model.base, backend="local"), ctx)
    assert tuned.loss(test) == pytest.approx(report["metrics"]["fine-tuned"]["loss"], rel=1e-4)
    assert base.loss(test) == pytest.approx(report["metrics"]["base"]["loss"], rel=1e-4)
    answers = tuned.generate([ex["messages"][:-1] for ex in test[:2]], 4)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)


def test_a_model_no_backend_answers_for_is_a_user_error(project: Path) -> None:
    with pytest.raises(UserError, match="no plugin gives a predictor for adapter /x on base on backend 'nowhere'"):
        default_hooks().predictor(ModelRef(kind="adapter", base="base", backend="nowhere", path=Path("/x")),
                                  OutsideARun(project, {}))


class EchoBackend:
    """A predictor for models of another backend than the run's (a judge, a registered cloud version)."""

    @hookimpl
    def ftp_predictor(self, model: ModelRef, ctx: Any) -> Any:
        return "echo predictor" if model.backend == "echo" else None


def test_within_a_run_another_backends_model_comes_from_the_hook(project: Path, pm: Any) -> None:
    from ftp.config.pipeline_file import load_pipeline
    from ftp.run.context import RunContext
    from ftp.run.progress import QuietReporter
    from ftp.run.store import find_run

    assert invoke("run", "pipeline.yaml", "--quiet", "--steps", "validate").exit_code == 0
    pm.register(EchoBackend(), name="echo")
    hooks = default_hooks()
    run = find_run(project / "runs", next((project / "runs" / "tiny").iterdir()).name)
    ctx = RunContext(run, load_pipeline(project / "pipeline.yaml", "local", hooks.catalog()), QuietReporter(), hooks)
    assert ctx.predictor(ModelRef(kind="cloud", base="b", backend="echo", cloud_id="m")) == "echo predictor"
    assert ctx._trainer is None  # the run's own trainer was not asked
