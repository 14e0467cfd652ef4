"""Built-in evaluators: test-split loss and perplexity, and exact match of the generated answer
(normalised as ``evaluate.normalize`` says, see :mod:`ftp.eval.normalize`)."""

from __future__ import annotations

import math
from typing import Any, cast

from ftp import hookimpl
from ftp.errors import UserError
from ftp.eval.normalize import MODES, NormalizeMode, answers_match
from ftp.types import EvalRequest, Metric, MetricSpec


def normalize_mode(settings: dict[str, Any]) -> NormalizeMode:
    """``evaluate.normalize`` of the pipeline (a dict that may lack the section), "basic" by default."""
    mode = (settings.get("evaluate") or {}).get("normalize") or "basic"
    if mode not in MODES:
        raise UserError(f"evaluate.normalize is {mode!r}; set it to one of {', '.join(MODES)}")
    return cast(NormalizeMode, mode)


def f1_from_counts(tp: float, fp: float, fn: float) -> float:
    """F1 from true positives, false positives and false negatives: 2tp / (2tp + fp + fn), 0 with no counts
    (scikit-learn's ``zero_division=0``). One formula for every F1 the built-in evaluators report."""
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def exact_match_scores(predictions: list[str], references: list[str], mode: NormalizeMode = "basic") -> list[float]:
    """1.0 where the answer matches the reference under ``mode``, per example: paired comparisons need them."""
    return [float(answers_match(p, r, mode)) for p, r in zip(predictions, references)]


def exact_match(predictions: list[str], references: list[str], mode: NormalizeMode = "basic") -> float:
    if not references:
        return 0.0
    return sum(exact_match_scores(predictions, references, mode)) / len(references)


@hookimpl
def ftp_metrics() -> list[MetricSpec]:
    return [
        MetricSpec(name="loss", description="mean cross-entropy on the answer tokens of the test split",
                   higher_is_better=False),
        MetricSpec(name="perplexity", description="exp(loss)", higher_is_better=False),
        MetricSpec(name="exact_match",
                   description="share of answers equal to the reference after evaluate.normalize (default basic: "
                               "strip, collapse whitespace, casefold; squad also drops punctuation and a/an/the); "
                               "JSON objects and arrays compared by value; 0-1"),
    ]


@hookimpl
def ftp_evaluate(request: EvalRequest) -> list[Metric]:
    out: list[Metric] = []
    n = len(request.references)

    def add(name: str, value: float, higher: bool = True, scores: list[float] | None = None,
            details: dict[str, Any] | None = None) -> None:
        out.append(Metric(name=name, value=value, candidate=request.candidate, n=n, higher_is_better=higher,
                          scores=scores, details=details or {}))

    if "exact_match" in request.metrics:
        mode = normalize_mode(request.settings)
        scores = exact_match_scores(request.predictions, request.references, mode)
        add("exact_match", sum(scores) / n if n else 0.0, scores=scores,
            details={"normalize": mode, "json_by_value": mode != "none"})
    if {"loss", "perplexity"} & set(request.metrics) and request.predictor is not None:
        loss: Any = request.predictor.loss(request.examples)
        if loss is not None:
            if "loss" in request.metrics:
                add("loss", float(loss), higher=False)
            if "perplexity" in request.metrics:
                add("perplexity", math.exp(min(float(loss), 50.0)), higher=False)
    return out
