"""Review, evaluation and the gate: metrics (per candidate and per example), comparisons, the report."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

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
    """One number for one candidate model on the test split.

    Two ways to make it comparable between candidates, pairwise on the same examples:

    - ``scores``: its per-example values in test order, when the metric is their mean (exact match,
      token F1); 0/1 scores get McNemar's test, others a sign-flip test, both a paired bootstrap.
    - ``stats`` + ``from_stats``: for a corpus metric (BLEU, chrF, macro-F1, field-F1) each example's
      summable statistics (n-gram matches, per-class true/false positives) and the function from their
      column sums to the value; a resample sums the same example rows for both candidates.

    ``details`` holds what a report shows beside the number (per-class table, confusion matrix, the
    sacrebleu signature, per-field accuracy); it must be JSON-serialisable."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str
    value: float
    candidate: str
    n: int
    higher_is_better: bool = True
    plugin: str | None = None
    scores: list[float] | None = None
    stats: list[list[float]] | None = None
    from_stats: SkipValidation[Callable[[Sequence[float]], float] | None] = Field(None, exclude=True)
    details: dict[str, Any] = Field(default_factory=dict)


class ScoredTable(Value):
    """Every candidate's metrics and answers on the same test examples, handed to ``ftp_compare`` at once.

    ``resamples``, ``confidence`` and ``seed`` are the run's (``evaluate.*``); comparisons use them so one
    pipeline file always gives the same intervals."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    n: int
    candidates: list[str]
    metrics: list[Metric]
    examples: list[Example] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list)
    predictions: dict[str, list[str]] = Field(default_factory=dict)
    resamples: int = 10_000
    confidence: float = 0.95
    seed: int = 0
    settings: dict[str, Any] = Field(default_factory=dict)

    def scores(self, candidate: str, metric: str) -> list[float] | None:
        """The per-example scores of ``candidate`` on ``metric``, when its evaluator gave them."""
        return next((m.scores for m in self.metrics if m.candidate == candidate and m.name == metric), None)

    def metric(self, candidate: str, name: str) -> Metric | None:
        return next((m for m in self.metrics if m.candidate == candidate and m.name == name), None)


class Comparison(Value):
    """``candidate`` minus ``baseline`` on one metric: the difference, its confidence interval, and a
    p-value of the paired ``test`` (``mcnemar_exact``, ``mcnemar_chi2``, ``sign_flip``,
    ``approximate_randomisation``, ...). ``wins`` / ``ties`` / ``losses`` count examples where the
    candidate's per-example score is higher / equal / lower (metrics with per-example scores only)."""

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
    p_value: float | None = None
    test: str | None = None
    wins: int | None = None
    ties: int | None = None
    losses: int | None = None
    resamples: int | None = None
    seed: int | None = None
    candidate_value: float | None = None
    baseline_value: float | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    def describe(self) -> str:
        p = f", p={self.p_value:.3g}" if self.p_value is not None else ""
        return (f"{self.metric} {self.candidate} - {self.baseline} {self.difference:+.4f} "
                f"[{self.low:+.4f}, {self.high:+.4f}] ({self.confidence:.0%}, {self.method}{p}, n={self.n})")


class GateCheck(Value):
    """One pass/fail verdict of the promotion gate, with the reason a human can act on."""

    name: str
    passed: bool
    reason: str


class AnswerFormat(Value):
    """What the task's answers look like, read off the reference answers (and the training answers in
    a run): which metrics fit, and what "in format" means for format compliance."""

    kind: Literal["label", "json", "text"]
    labels: list[str] = Field(default_factory=list)  # kind "label": the label set
    keys: list[str] = Field(default_factory=list)  # kind "json": the dominant object's top-level keys
    pattern: str | None = None  # a regex every in-format answer matches (``evaluate.format_regex``)
    share: float = 1.0  # the share of reference answers in this format
    reason: str = ""  # one line for the run log: why this kind


class EvalRequest(Value):
    """One candidate's answers on the test split, handed to every evaluator. ``settings`` is the
    pipeline file as a dict (``settings["evaluate"]`` holds ``normalize``, ``json_schema``, ``labels``...);
    ``answer_format`` is what the references look like."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    candidate: str
    model: ModelRef
    examples: list[Example]
    predictions: list[str]
    references: list[str]
    metrics: list[str]
    predictor: SkipValidation[Predictor | None] = None  # for metrics that need the model (loss); in memory only
    settings: dict[str, Any] = Field(default_factory=dict)
    answer_format: AnswerFormat | None = None


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
    between candidates that ``ftp_compare`` plugins made (the gate reads their intervals)."""

    metrics: dict[str, dict[str, float]]
    higher_is_better: dict[str, bool]
    n: int
    comparisons: list[Comparison] = Field(default_factory=list)

    def comparison(self, metric: str, baseline: str, candidate: str = "fine-tuned") -> Comparison | None:
        return next((c for c in self.comparisons
                     if c.metric == metric and c.baseline == baseline and c.candidate == candidate), None)
