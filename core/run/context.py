"""What plugins see of a run: the ``StepContext`` the runner hands to every hook."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftp.hooks import Hooks
from ftp.config.pipeline_file import Pipeline
from ftp.run.store import RunDir
from ftp.types import ModelRef, Predictor, Trainer


@dataclass
class RunContext:
    """What plugins see of the run (the ``StepContext`` protocol)."""

    run: RunDir
    pipeline: Pipeline
    reporter: Any
    hooks: Hooks
    _predictors: dict[str, Predictor] = field(default_factory=dict)
    _trainer: Trainer | None = None
    phase: str = ""
    assume_yes: bool = False

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def run_dir(self) -> Path:
        return self.run.path

    @property
    def backend_settings(self) -> dict[str, Any]:
        return self.pipeline.backend_settings

    def trainer(self) -> Trainer:
        """One trainer per run, so what it keeps in memory (the trained model) serves later steps."""
        if self._trainer is None:
            self._trainer = self.hooks.trainer(self.pipeline.backend)
        return self._trainer

    def log_metrics(self, row: dict[str, Any]) -> None:
        self.run.append_metrics({"phase": self.phase, **row})

    def setting(self, path: str) -> Any:
        return self.pipeline.setting(path)

    def confirm(self, question: str) -> bool:
        """``--yes`` answers yes; otherwise ask on the terminal, and no input (a script, EOF) means no."""
        if self.assume_yes:
            return True
        import click

        try:
            return bool(click.confirm(question, default=False, err=True))
        except click.Abort:
            return False

    def resource(self, key: str) -> Any:
        return self.run.state.resources.get(key)

    def record_resource(self, key: str, value: Any) -> None:
        self.run.state.resources[key] = value
        self.run.save()

    def predictor(self, model: ModelRef) -> Predictor:
        """Load each model once per run; review and evaluate share it. A model of the run's own backend
        comes from the run's trainer (it may still hold the weights it trained); any other from its
        backend's ``ftp_predictor``."""
        key = model.model_dump_json()
        if key not in self._predictors:
            self._predictors[key] = (self.trainer().predictor(model, self) if model.backend == self.pipeline.backend
                                     else self.hooks.predictor(model, self))
        return self._predictors[key]
