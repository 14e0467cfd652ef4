"""Review, evaluation and the gate: metrics (per candidate and per example), comparisons, the report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, SkipValidation

from ftp.values.base import Example, Value
from ftp.values.training import ModelRef, Predictor, TrainResult


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


class EvalRequest(Value):
    """One candidate's answers on the test split, handed to every evaluator."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    candidate: str
    model: ModelRef
    examples: list[Example]
    predictions: list[str]
    references: list[str]
    metrics: list[str]
    predictor: SkipValidation[Predictor | None] = None  # for metrics that need the model (loss); in memory only
    settings: dict[str, Any] = Field(default_factory=dict)


class ReviewRequest(Value):
    """What a review plugin may look at after training."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    run_dir: Path
    metrics_file: Path
    train_result: TrainResult
    samples: list[Example]
    predictor: SkipValidation[Callable[[], Predictor | None] | None] = None  # loads the model only when called
    settings: dict[str, Any] = Field(default_factory=dict)


class EvalReport(Value):
    """Metrics per candidate, as the gate sees them: ``metrics[candidate][name]``; and the comparisons
    between candidates that ``ftp_compare`` plugins made."""

    metrics: dict[str, dict[str, float]]
    higher_is_better: dict[str, bool]
    n: int
    comparisons: list[Comparison] = Field(default_factory=list)
