"""The pipeline file's schema: one pydantic model per section, defaults from the field.

Sections shared by every backend live at the top level; ``backends.<name>`` repeats any of them to
override it for that backend (the base model differs between a local prototype and Azure
production) and adds the backend's own keys, which the backend plugin validates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ftp.config.monitor_settings import AutoRollbackSettings, MonitorSettings, RetrainSettings

COMMON_SECTIONS = ("data", "model", "train", "review", "evaluate", "gate", "register", "deploy", "serve", "monitor",
                   "retrain_when")
ATTRIBUTE = {"register": "registration"}  # file key -> attribute, where they differ


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)


class FrozenSection(Section):
    """A section a trainer receives (``TrainRequest``): what it was asked for cannot change under it."""

    model_config = ConfigDict(frozen=True)


class SplitSettings(Section):
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 42

    @field_validator("ratios")
    @classmethod
    def _sum_to_one(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(r <= 0 for r in v) or abs(sum(v) - 1.0) > 1e-6:
            raise ValueError(f"ratios must be three positive numbers that sum to 1, got {list(v)}")
        return v


class ColumnMapping(Section):
    """Which table columns make a chat example (Parquet, CSV, save_to_disk inputs): user turn, answer, system."""

    prompt: str
    completion: str
    system: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in (("prompt", self.prompt), ("completion", self.completion),
                                  ("system", self.system)) if v is not None}


class DataSettings(Section):
    train: Path | None = None
    validation: Path | None = None
    test: Path | None = None
    split: SplitSettings = SplitSettings()
    provenance: Literal["human-reviewed", "synthetic", "mixed"] | None = None
    columns: ColumnMapping | None = None  # for table inputs; chat JSONL and a ``messages`` column need none


class ModelSettings(FrozenSection):
    base: str | None = None
    chat_template: Literal["auto", "tokenizer", "gemma", "chatml", "llama3", "mistral", "phi3"] = "auto"
    max_seq_length: int = Field(1024, gt=8)


class LoraSettings(FrozenSection):
    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"
    dora: bool = False


class EarlyStoppingSettings(FrozenSection):
    patience: int = Field(2, ge=1)
    min_delta: float = 0.0


class TrainSettings(FrozenSection):
    method: Literal["lora", "qlora", "full"] = "lora"
    epochs: float = Field(3, gt=0)
    batch_size: int = Field(8, gt=0)
    gradient_accumulation_steps: int = Field(1, gt=0)
    learning_rate: float | None = Field(None, gt=0)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    max_steps: int | None = Field(None, gt=0)
    eval_steps: int | None = Field(None, gt=0)
    seed: int = 42
    loss_on: Literal["assistant", "all", "last_assistant"] = "assistant"
    invalid_examples: Literal["error", "drop"] = "error"
    optimizer: Literal["adamw", "paged_adamw_8bit"] | None = None
    gradient_checkpointing: bool = False
    packing: bool = True
    pack_tokens: int | None = Field(None, gt=0)  # with packing: fill each micro-batch to this many tokens
    checkpoint_steps: int | None = Field(None, gt=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)  # of the answer tokens' targets, training loss only
    neftune_alpha: float | None = Field(None, gt=0)  # NEFTune embedding noise (5 in the paper); off by default
    lora: LoraSettings = LoraSettings()
    early_stopping: EarlyStoppingSettings | None = EarlyStoppingSettings()

    def resolved_optimizer(self) -> str:
        """Field default: paged 8-bit AdamW for QLoRA (it needs bitsandbytes' CUDA or CPU kernels), else AdamW."""
        return self.optimizer or ("paged_adamw_8bit" if self.method == "qlora" else "adamw")

    def resolved_pack_tokens(self) -> int | None:
        """A token budget per micro-batch means something only with packing."""
        return self.pack_tokens if self.packing else None

    def resolved_learning_rate(self) -> float:
        """Field default: 2e-4 for adapters, 2e-5 when every weight moves."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-5 if self.method == "full" else 2e-4


class ReviewSettings(Section):
    samples: int = Field(5, ge=0)


class JudgeSettings(Section):
    """An LLM judge behind any OpenAI-compatible endpoint (``evaluate.judge``); Azure OpenAI when
    ``api_version`` is set (``base_url`` is then the resource endpoint and ``model`` the deployment)."""

    base_url: str
    model: str
    api_key_env: str | None = None  # the environment variable holding the key; unset: no key (local servers)
    api_version: str | None = None  # Azure OpenAI's api-version; set it to talk to an Azure deployment
    rubric: str = ("Judge whether the response answers the prompt correctly and follows the format of the "
                   "reference answer.")
    mode: Literal["pointwise", "pairwise"] = "pairwise"
    max_tokens: int = Field(400, gt=0)
    timeout: float = Field(60.0, gt=0)  # seconds per call
    retries: int = Field(2, ge=0)  # more attempts after a malformed verdict, before it counts as judge_error
    cache: Path | None = Path(".ftp/judge-cache.db")  # verdicts by (judge, rubric, input); null: no cache
    max_examples: int | None = Field(None, gt=0)  # judge only the first N test examples (cost)


class EvaluateSettings(Section):
    # None: chosen from the answers' format (labels, JSON or free text), and said in the run log
    metrics: list[str] | None = None
    compare_to: list[Literal["base", "champion"]] = ["base"]
    max_examples: int | None = Field(None, gt=0)
    max_new_tokens: int | Literal["auto"] = "auto"
    batch_size: int | Literal["auto"] = "auto"  # auto: from free GPU memory; 8 on a CPU
    normalize: Literal["none", "basic", "squad"] = "basic"  # exact match and token F1 (docs/evaluation.md)
    labels: list[str] | None = None  # the label set; default: read off the reference answers
    json_schema: Path | None = None  # extraction: each answer is also checked against this JSON Schema
    format_regex: str | None = None  # format compliance: every answer must match it (full match)
    resamples: int = Field(10_000, ge=100)  # paired bootstrap replicates
    confidence: float = Field(0.95, gt=0.5, lt=1)  # of every interval in the report
    seed: int | None = None  # of the bootstrap; default: train.seed
    identical_share: float = Field(0.9, gt=0, le=1)  # warn when this share of answers equals the base model's
    worst_examples: int = Field(20, ge=0)  # shown in eval.html
    judge: JudgeSettings | None = None


class Threshold(Section):
    min: float | None = None
    max: float | None = None
    min_gain_over_base: float | None = None
    no_regression_vs: Literal["champion", "base"] | None = None
    max_regression: float = Field(0.0, ge=0)  # with no_regression_vs: how much worse still passes

    @model_validator(mode="after")
    def _not_empty(self) -> "Threshold":
        if self.min is None and self.max is None and self.min_gain_over_base is None and self.no_regression_vs is None:
            raise ValueError("give at least one of min, max, min_gain_over_base, no_regression_vs")
        return self


class GateSettings(Section):
    """``gate:``: one rule per metric name (``exact_match: {min_gain_over_base: 0.05}``), plus
    ``confidence``: when set, comparisons are judged on the bound of their interval at that confidence
    (the lower bound of a gain), not on the point estimate."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Threshold] = Field(init=False)

    confidence: float | None = Field(None, gt=0.5, lt=1)

    def rules(self) -> dict[str, Threshold]:
        return dict(self.__pydantic_extra__ or {})


class RegisterSettings(Section):
    name: str | None = None
    registry: str = Field("sqlite", alias="kind")  # the file may say kind: or registry:
    store: Path = Path(".ftp/registry.db")
    artifacts: Path = Path(".ftp/artifacts")  # the content-addressed store of models and data (ftp.registry.store)
    alias: str | None = None  # set this alias on the new version when the gate passed (e.g. challenger)
    tracking_uri: str | None = None  # kind: mlflow; default: $MLFLOW_TRACKING_URI

    def location(self) -> Path:
        """Where the registry lives: ``tracking_uri`` when set (an MLflow server; its plugin restores the
        ``http://`` a Path folds), else the ``store`` file."""
        return Path(self.tracking_uri) if self.tracking_uri else self.store


class TrafficSettings(Section):
    new: int = Field(100, ge=0, le=100)


class DeploySettings(Section):
    strategy: Literal["blue-green", "replace"] = "blue-green"
    traffic: TrafficSettings = TrafficSettings()
    store: Path = Path(".ftp/deployments.db")
    # test prompts the new slot must answer (without errors, in the data's answer format) before it takes
    # traffic; 0 turns the smoke test off
    smoke_test: int = Field(3, ge=0)
    mirror: int = Field(0, ge=0, le=50)  # % of the live slot's requests also sent to the new slot, answers logged only
    alias: str | None = "champion"  # the registry alias that follows promotion (None: aliases left alone)
    auto_rollback: AutoRollbackSettings | None = None  # during a rollout, back when the new slot is worse


class ServeLimits(Section):
    """Per-request limits of ``ftp serve``: beyond them a request is refused (400/413/429/504), the server goes on."""

    max_request_bytes: int = Field(1_048_576, ge=1024)
    max_messages: int = Field(256, ge=1)
    max_tokens: int = Field(4096, ge=1)  # the largest max_tokens a request may ask for
    max_concurrent: int = Field(64, ge=1)  # requests in flight; more answer 429
    timeout_s: float = Field(120.0, gt=0)  # a request still unanswered after this answers 504


class ServeSettings(Section):
    engine: Literal["transformers", "vllm"] = "transformers"  # local versions; vllm where it is installed
    vllm_args: list[str] = []  # more `vllm serve` arguments (e.g. --gpu-memory-utilization 0.5)
    log_content: bool = False  # prompt and answer text in the request log (hashes and lengths otherwise)
    request_log: Path | None = None  # default: requests.db beside deploy.store
    retention_days: float = Field(30, gt=0)  # request-log rows older than this are deleted
    max_log_rows: int = Field(1_000_000, ge=1000)  # and beyond this many, the oldest
    batch_window_ms: float = Field(5.0, ge=0)  # how long a request waits for others to batch with
    max_batch_size: int = Field(32, ge=1)
    default_max_tokens: int = Field(256, ge=1)
    limits: ServeLimits = ServeLimits()

    def log_path(self, deploy_store: Path) -> Path:
        return self.request_log or Path(deploy_store).parent / "requests.db"


class CommonSettings(Section):
    """Everything a ``backends.<name>`` block may override."""

    data: DataSettings = DataSettings()
    model: ModelSettings = ModelSettings()
    train: TrainSettings = TrainSettings()
    review: ReviewSettings = ReviewSettings()
    evaluate: EvaluateSettings = EvaluateSettings()
    gate: GateSettings = GateSettings()
    # The file says ``register:``; the attribute cannot, as pydantic models already have a ``register``.
    registration: RegisterSettings = Field(RegisterSettings(), alias="register")
    deploy: DeploySettings = DeploySettings()
    serve: ServeSettings = ServeSettings()
    monitor: MonitorSettings = MonitorSettings()
    retrain_when: RetrainSettings = RetrainSettings()


class PipelineSettings(CommonSettings):
    """A whole pipeline file after overrides for the chosen backend have been applied."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    plugins: list[str] = []  # project-local plugin modules, registered before the rest is read (local_plugins.py)
    backends: dict[str, dict[str, Any]] = {}

    def hyperparameters(self) -> dict[str, Any]:
        """The training settings that define the model, as recorded in lineage."""
        return hyperparameters(self.train, self.model)


def hyperparameters(train: TrainSettings, model: ModelSettings) -> dict[str, Any]:
    """The training settings that define a model, defaults resolved, as lineage and checkpoints record them."""
    hp = train.model_dump(mode="json")
    hp["learning_rate"] = train.resolved_learning_rate()
    hp["optimizer"] = train.resolved_optimizer()
    hp["pack_tokens"] = train.resolved_pack_tokens()
    hp["max_seq_length"] = model.max_seq_length
    hp["chat_template"] = model.chat_template
    return hp
