"""Typed value objects that cross hook boundaries.

Everything a hook receives or returns is one of these, so a plugin never has to know how the runner
stores state. The pydantic ones are what the runner persists in ``state.json`` (so ``--resume`` can
rebuild them); the Protocols describe components that plugins hand back (trainer, predictor,
registry, deployer), which live only in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ftp.config.model_source import model_source
from ftp.config.settings import ModelSettings, TrainSettings, hyperparameters
from ftp.config.shorthand import expand_shorthand

Severity = Literal["error", "warning", "info"]
Split = Literal["train", "validation", "test"]
Message = dict[str, Any]
Example = dict[str, Any]


class Value(BaseModel):
    """Base for persisted value objects: immutable, and unknown fields are a bug."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _is_table(file: str) -> bool:
    """Whether findings in ``file`` point at table rows (Parquet, CSV, a save_to_disk folder)."""
    path = Path(file)
    return path.suffix.lower() in (".parquet", ".csv") or path.is_dir()


class Finding(Value):
    """One observation a data validator makes; errors stop the run before compute is spent."""

    severity: Severity
    code: str
    message: str
    file: str | None = None
    line: int | None = None
    hint: str | None = None
    plugin: str | None = None

    def format(self) -> str:
        row = "row " if self.file and _is_table(self.file) else ""  # a table's rows, not its (binary) lines
        where = f"{self.file}:{row}{self.line}: " if self.file and self.line else (f"{self.file}: " if self.file else "")
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}{self.severity}: {self.message}{hint} [{self.code}]"


class DatasetRef(Value):
    """A data file pinned by content, so lineage and caches key on bytes, not on paths.

    Chat JSONL, or a table (Parquet, CSV, a save_to_disk folder) read through ``columns``, the mapping
    from table columns to a chat example; for a table ``sha256`` covers the bytes and the mapping.
    """

    path: Path
    sha256: str
    examples: int
    split: Split | None = None
    columns: dict[str, str] | None = None


class DataBundle(Value):
    """The data files a pipeline names, before or after splitting."""

    train: DatasetRef
    validation: DatasetRef | None = None
    test: DatasetRef | None = None

    def files(self) -> list[DatasetRef]:
        return [d for d in (self.train, self.validation, self.test) if d is not None]


class SplitResult(Value):
    """The three files the rest of the pipeline reads, plus the manifest that records them."""

    train: DatasetRef
    validation: DatasetRef
    test: DatasetRef
    manifest: Path


class ModelRef(Value):
    """A model a backend can load: the base model, or what training produced on top of it."""

    kind: Literal["base", "adapter", "full", "cloud"]
    base: str
    backend: str
    path: Path | None = None
    cloud_id: str | None = None

    def describe(self) -> str:
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
    # What only the backend knows about how the model was made (Azure: job id, file ids); kept in lineage.
    backend_details: dict[str, Any] = Field(default_factory=dict)


class Artifact(Value):
    """A file a review plugin wrote into the run directory."""

    name: str
    path: Path
    description: str = ""


class MetricSpec(Value):
    """Declares a metric so pipeline files can name it (evaluate.metrics, gate) before any run."""

    name: str
    description: str
    higher_is_better: bool = True


class Metric(Value):
    """One number for one candidate model on the test split; ``scores``, where the metric has them, are
    its per-example values in the order of the test examples, so candidates can be compared pairwise."""

    name: str
    value: float
    candidate: str
    n: int
    higher_is_better: bool = True
    plugin: str | None = None
    scores: list[float] | None = None


class ScoredTable(Value):
    """Every candidate's metrics on the same test examples, handed to ``ftp_compare`` at once."""

    n: int
    candidates: list[str]
    metrics: list[Metric]

    def scores(self, candidate: str, metric: str) -> list[float] | None:
        """The per-example scores of ``candidate`` on ``metric``, when its evaluator gave them."""
        return next((m.scores for m in self.metrics if m.candidate == candidate and m.name == metric), None)


class Comparison(Value):
    """``candidate`` minus ``baseline`` on one metric, with a confidence interval (paired, where possible)."""

    metric: str
    candidate: str
    baseline: str
    difference: float
    low: float
    high: float
    confidence: float = 0.95
    n: int
    method: str
    plugin: str | None = None

    def describe(self) -> str:
        return (f"{self.metric} {self.candidate} - {self.baseline} {self.difference:+.4f} "
                f"[{self.low:+.4f}, {self.high:+.4f}] ({self.confidence:.0%}, {self.method}, n={self.n})")


class GateCheck(Value):
    """One pass/fail verdict of the promotion gate, with the reason a human can act on."""

    name: str
    passed: bool
    reason: str


class ModelVersion(Value):
    """A registered model version and everything needed to reproduce or audit it. ``model`` says what
    the version is (adapter, full model, cloud model) and where, so loading or exporting it never has to
    guess the kind from its hyperparameters."""

    name: str
    version: int
    created_at: str
    run_id: str
    backend: str
    base_model: str
    model: ModelRef
    data_sha256: dict[str, str]
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    pipeline_sha256: str
    code_version: str
    backend_details: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_artifact(cls, data: Any) -> Any:
        """Versions registered before ``model`` existed stored a bare ``artifact`` location: rebuild the
        reference: a folder path is an adapter (a full model when trained with ``method: full``), anything
        else an id on the cloud service that trained it."""
        if not isinstance(data, dict) or "artifact" not in data:
            return data
        data = dict(data)
        artifact = str(data.pop("artifact"))
        if not data.get("model"):
            method = (data.get("hyperparameters") or {}).get("method")
            local = model_source(artifact).kind == "path"
            kind = "cloud" if not local else "full" if method == "full" else "adapter"
            data["model"] = {"kind": kind, "base": data.get("base_model", ""), "backend": data.get("backend", ""),
                             **({"cloud_id": artifact} if kind == "cloud" else {"path": artifact})}
        return data

    @property
    def artifact(self) -> str:
        """The model's location: its folder, or its id on the cloud service."""
        return str(self.model.cloud_id or self.model.path or "")


class Deployment(Value):
    """Slots and traffic weights of a deployed model name; serving and monitoring read this."""

    name: str
    backend: str
    slot: str
    version: int
    traffic: dict[str, int]
    slots: dict[str, int]
    endpoint: str | None = None
    created_at: str


class Provisioned(Value):
    """What a deployer made for a version (an Azure deployment, a serverless endpoint, or nothing but a
    record); the core then assigns its slot and traffic (``ftp.deploy.slots.record``)."""

    backend: str
    endpoint: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class BackendLimits(Value):
    """What a backend accepts, so the generic data checks judge files by it without naming backends."""

    max_tokens_per_example: int | None = None  # longer examples are truncated (or refused)
    min_examples: int | None = None  # fewer training examples are refused
    max_file_mb: float | None = None  # larger training files are refused
    price_per_1m_tokens: float | None = None  # a default training price for ``ftp data check``'s estimate


class BackendSpec(Value):
    """A backend a plugin provides; ``settings`` validates its ``backends.<name>`` keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str
    description: str
    settings: type[BaseModel] | None = None
    limits: BackendLimits = Field(default_factory=BackendLimits)


class ConfigSection(Value):
    """A pipeline-file section a plugin owns, e.g. ``validate.word_limit`` or ``my_plugin``."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    path: str
    model: type[BaseModel]


# --- runtime objects (not persisted) -------------------------------------------------------------


@runtime_checkable
class Reporter(Protocol):
    """Where plugins send progress; the CLI renders it as rich output, JSON lines or nothing."""

    def event(self, kind: str, **data: Any) -> None: ...

    def progress(self, description: str, total: int) -> "ProgressTask": ...


class ProgressTask(Protocol):
    def update(self, completed: int, **fields: Any) -> None: ...

    def close(self) -> None: ...


class StepContext(Protocol):
    """The runner's services a plugin may use during a step (read-only: the runner owns the run)."""

    @property
    def run_id(self) -> str: ...

    @property
    def run_dir(self) -> Path: ...

    @property
    def reporter(self) -> Reporter: ...

    @property
    def backend_settings(self) -> dict[str, Any]: ...

    def log_metrics(self, row: dict[str, Any]) -> None: ...

    def setting(self, path: str) -> Any: ...

    def confirm(self, question: str) -> bool:
        """Ask the user before spending money; True at once under ``--yes``, False when nobody can answer."""

    def resource(self, key: str) -> Any:
        """What ``record_resource`` stored under ``key`` in this run (also in an earlier attempt), or None."""

    def record_resource(self, key: str, value: Any) -> None:
        """Remember a cloud resource (job id, file ids) in ``state.json`` now, before anything else happens."""


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


class ModelRegistry(Protocol):
    """A store of model versions; ``ftp models`` reads it, the register step writes it."""

    name: str
    location: str

    def register(self, version: ModelVersion) -> ModelVersion: ...

    def list(self, name: str | None = None) -> list[ModelVersion]: ...

    def get(self, name: str, version: int | None = None) -> ModelVersion | None: ...


class Deployer(Protocol):
    """Provisions a registered version (an endpoint, or nothing beyond the record); the core owns the
    slots and traffic weights and records them after ``deploy`` returns."""

    name: str

    def deploy(self, request: "DeployRequest", ctx: StepContext) -> Provisioned: ...


class DeployRequest(Value):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    version: ModelVersion
    strategy: Literal["blue-green", "replace"]
    traffic_new: int
    store: Path
    backend_settings: dict[str, Any] = Field(default_factory=dict)


class EvalRequest(Value):
    """One candidate's answers on the test split, handed to every evaluator."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    candidate: str
    model: ModelRef
    examples: list[Example]
    predictions: list[str]
    references: list[str]
    metrics: list[str]
    predictor: Any = None
    settings: dict[str, Any] = Field(default_factory=dict)


class ReviewRequest(Value):
    """What a review plugin may look at after training."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    run_dir: Path
    metrics_file: Path
    train_result: TrainResult
    samples: list[Example]
    predictor: Callable[[], Any] | None = None
    settings: dict[str, Any] = Field(default_factory=dict)


class CheckContext(Value):
    """What a data check is built with: the effective settings and the files it will see."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    backend: str
    settings: dict[str, Any]
    data: DataBundle
    token_counter: Any = None  # a TokenCounter for the target model, when the backend has one
    limits: BackendLimits = Field(default_factory=BackendLimits)  # the target backend's (its BackendSpec)

    def section(self, name: str) -> dict[str, Any]:
        """This check's ``validate.<name>`` settings as plain data (empty when the file has none)."""
        value = expand_shorthand((self.settings.get("validate") or {}).get(name))
        return dict(value) if isinstance(value, dict) else {}


class TokenCounter(Protocol):
    """Counts tokens of whole examples as the target model will see them (chat template applied)."""

    name: str
    limit: int | None
    exact: bool

    def count(self, examples: Sequence[Example]) -> list[int]: ...


class EvalReport(Value):
    """Metrics per candidate, as the gate sees them: ``metrics[candidate][name]``; and the comparisons
    between candidates that ``ftp_compare`` plugins made."""

    metrics: dict[str, dict[str, float]]
    higher_is_better: dict[str, bool]
    n: int
    comparisons: list[Comparison] = Field(default_factory=list)
