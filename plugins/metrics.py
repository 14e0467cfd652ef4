"""Built-in evaluators: test-split loss and perplexity, and exact match of the generated answer."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ftp import hookimpl
from ftp.types import EvalRequest, Metric, MetricSpec

_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Compare answers as a human would: JSON by value, other text modulo whitespace."""
    text = text.strip()
    try:
        return json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False)
    except (json.JSONDecodeError, ValueError):
        return _SPACE.sub(" ", text)


def exact_match_scores(predictions: list[str], references: list[str]) -> list[float]:
    """1.0 where the answer equals the reference, per example: paired comparisons need them."""
    return [float(normalise(p) == normalise(r)) for p, r in zip(predictions, references)]


def exact_match(predictions: list[str], references: list[str]) -> float:
    if not references:
        return 0.0
    return sum(exact_match_scores(predictions, references)) / len(references)


@hookimpl
def ftp_metrics() -> list[MetricSpec]:
    return [
        MetricSpec(name="loss", description="mean cross-entropy on the answer tokens of the test split",
                   higher_is_better=False),
        MetricSpec(name="perplexity", description="exp(loss)", higher_is_better=False),
        MetricSpec(name="exact_match", description="share of answers equal to the reference (JSON compared by value)"),
    ]


@hookimpl
def ftp_evaluate(request: EvalRequest) -> list[Metric]:
    out: list[Metric] = []
    n = len(request.references)

    def add(name: str, value: float, higher: bool = True, scores: list[float] | None = None) -> None:
        out.append(Metric(name=name, value=value, candidate=request.candidate, n=n, higher_is_better=higher,
                          scores=scores))

    if "exact_match" in request.metrics:
        scores = exact_match_scores(request.predictions, request.references)
        add("exact_match", sum(scores) / n if n else 0.0, scores=scores)
    if {"loss", "perplexity"} & set(request.metrics) and request.predictor is not None:
        loss: Any = request.predictor.loss(request.examples)
        if loss is not None:
            if "loss" in request.metrics:
                add("loss", float(loss), higher=False)
            if "perplexity" in request.metrics:
                add("perplexity", math.exp(min(float(loss), 50.0)), higher=False)
    return out
