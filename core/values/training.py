"""Models and training: the model reference, what a trainer is asked and answers, and its components."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import ConfigDict, Field

from ftp.config.settings import ModelSettings, TrainSettings, hyperparameters
from ftp.values.base import Example, Message, Value
from ftp.values.context import StepContext
from ftp.values.data import DatasetRef


class ModelRef(Value):
    """A model a backend can load: the base model, or what training produced on top of it."""

    kind: Literal["base", "adapter", "full", "cloud"]
    base: str
    backend: str
    path: Path | None = None
    cloud_id: str | None = None
    deployment: str | None = None  # an existing deployment serving it: answer through it, provision nothing

    def describe(self) -> str:
        if self.deployment:
            return f"deployment {self.deployment} of {self.cloud_id or self.base}"
        if self.kind == "base":
            return self.base
        return f"{self.kind} {self.path or self.cloud_id} on {self.base}"


class TrainSpec(Value):
    """What training will be asked to do, known before any data is split: the pipeline's ``train`` and
    ``model`` sections, typed and frozen, merged for the chosen backend (each resolved default is a
    method of the settings model, so no backend re-derives one), and the backend's own keys.
    ``Trainer.preflight`` judges it before the first step."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    backend: str
    base_model: str
    settings: TrainSettings
    model: ModelSettings = Field(default_factory=ModelSettings)
    backend_settings: dict[str, Any] = Field(default_factory=dict)

    @property
    def method(self) -> Literal["lora", "qlora", "full"]:
        return self.settings.method

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The settings as lineage and checkpoints record them (plain data, defaults resolved)."""
        return hyperparameters(self.settings, self.model)


class TrainRequest(TrainSpec):
    """What the runner asks a trainer for: the spec, plus the split data and where the model goes."""

    train: DatasetRef
    validation: DatasetRef | None
    output_dir: Path


class TrainResult(Value):
    """What a trainer hands back; ``metrics`` are final numbers, the curve is in metrics.jsonl."""

    model: ModelRef
    metrics: dict[str, float] = Field(default_factory=dict)
    steps: int = 0
    epochs: float = 0.0
    train_tokens: int = 0
    wall_seconds: float = 0.0
    peak_memory_mb: float | None = None
    best_step: int | None = None
    stopped_early: bool = False
    overfitting: str | None = None
    # Seconds per phase of the backend's training (local: setup, tokenizer, data, model, steps, validation,
    # save, checkpoint, finish): where a run's time goes besides its steps. Empty where the backend cannot tell.
    phases: dict[str, float] = Field(default_factory=dict)
    # What only the backend knows about how the model was made (Azure: job id, file ids); kept in lineage.
    backend_details: dict[str, Any] = Field(default_factory=dict)


class MemoryPlan(Value):
    """Where the memory of a training run goes, and whether it fits the device."""

    device: str
    device_gib: float | None
    parts_gib: dict[str, float]
    total_gib: float
    fits: bool | None
    suggestions: list[str] = Field(default_factory=list)
    basis: str = ""  # what the batches were assumed to hold
    worst_case_gib: float | None = None  # every example at the maximum sequence length


class Predictor(Protocol):
    """A loaded model that can answer prompts and score examples (evaluation and review)."""

    def generate(self, conversations: Sequence[list[Message]], max_new_tokens: int) -> list[str]: ...

    def loss(self, examples: Sequence[Example]) -> float | None: ...

    def count_tokens(self, text: str) -> int: ...


class Trainer(Protocol):
    """What ``ftp_trainer`` returns for its backend; creating it must be cheap (no heavy imports)."""

    name: str

    def preflight(self, spec: TrainSpec) -> list[str] | None:
        """Raise a UserError now, before any step, if the base model or a setting cannot work (name the
        key: ``train.epochs: ...``); return warnings for settings this backend will ignore."""

    def train(self, request: TrainRequest, ctx: StepContext) -> TrainResult: ...

    def predictor(self, model: ModelRef, ctx: StepContext) -> Predictor: ...

    def plan(self, request: TrainRequest) -> "MemoryPlan | None":
        """Predicted peak memory of ``train(request)`` on this machine (None where it does not apply)."""

    def export(self, model: ModelRef, out_dir: Path, merge: bool) -> Path:
        """Write ``model`` for serving elsewhere: the adapter, or (``merge``) a merged plain model."""

@runtime_checkable
class Cancellable(Protocol):
    """A trainer whose work runs elsewhere (a cloud job) and can be stopped from ``ftp runs cancel``."""

    def cancel(self, ctx: StepContext) -> str:
        """Cancel what this run started; return one line saying what happened."""
        ...
