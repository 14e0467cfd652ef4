"""The pipeline file's ``monitor:`` and ``retrain_when:`` sections and ``deploy.auto_rollback``: what
``ftp monitor --check`` holds the served traffic to, when a retrain fires, when a rollout goes back.
Durations are written ``90s``, ``30m``, ``24h``, ``7d``."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def seconds(text: str) -> float:
    """``24h`` as 86400.0; ValueError (a ConfigError naming the key, in a file) otherwise."""
    match = DURATION.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration; write e.g. 90s, 30m, 24h or 7d")
    return float(match.group(1)) * UNITS[match.group(2)]


def _duration(text: str) -> str:
    seconds(text)
    return text


Duration = Annotated[str, AfterValidator(_duration)]

# what ftp monitor compares with the training data (ftp.monitor.features computes them): numeric, then categorical
NUMERIC_FEATURES = ("prompt_chars", "prompt_words", "prompt_nonletter", "prompt_nonascii", "prompt_oov", "answer_chars")
CATEGORICAL_FEATURES = ("prompt_turns", "answer_label", "answer_in_format")


def _features(names: list[str] | None) -> list[str] | None:
    from ftp.config.check import suggest

    known = (*NUMERIC_FEATURES, *CATEGORICAL_FEATURES)
    for name in names or []:
        if name not in known:
            hint = suggest(name, known)
            raise ValueError(f"unknown drift feature {name!r}; " + (hint or f"known: {', '.join(known)}"))
    return names


Features = Annotated[list[str] | None, AfterValidator(_features)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class DriftThresholds(Section):
    """Per method; the defaults and their measured false-positive rates are in docs/monitoring.md."""

    population_stability_index: float = Field(0.25, gt=0)  # numeric features
    jensen_shannon_distance: float = Field(0.15, gt=0, le=1)  # categorical features (labels, turns)


class MonitorSettings(Section):
    """``monitor:``: the windows ``ftp monitor`` reports and the thresholds ``--check`` enforces on the
    latest complete window (None: not checked)."""

    since: Duration = "24h"
    window: Duration = "1h"
    min_samples: int = Field(200, ge=1)  # requests in a window before drift is judged (else insufficient_data)
    min_labelled: int = Field(30, ge=1)  # labelled answers before quality is judged
    drift: DriftThresholds = DriftThresholds()
    features: Features = None  # the drift features to compute (None: all; docs/monitoring.md lists them)
    error_rate: float | None = Field(0.05, ge=0, le=1)  # share of 5xx answers
    p95_latency_ms: float | None = Field(None, gt=0)
    p95_ttft_ms: float | None = Field(None, gt=0)
    accuracy: float | None = Field(None, ge=0, le=1)  # on labelled feedback
    max_drifted: int | None = Field(0, ge=0)  # features drifting in the window before the check fails


class QualityRule(Section):
    metric: Literal["accuracy"] = "accuracy"
    below: float | None = Field(None, ge=0, le=1)
    below_champion_by: float | None = Field(None, gt=0, le=1)  # the live version vs the champion's evaluation
    min_samples: int = Field(200, ge=1)  # labelled answers in the period


class DriftRule(Section):
    features: Features = None  # None: any feature ftp monitors
    any_of: int = Field(1, ge=1)  # this many of them drifting in a window
    consecutive_windows: int = Field(2, ge=1)
    min_samples: int = Field(200, ge=1)


class NewDataRule(Section):
    min_examples: int = Field(ge=1)  # labelled examples (feedback with a known prompt) since the version


class ScheduleRule(Section):
    max_days: float = Field(gt=0)  # days since the live version was registered


class LatencyRule(Section):
    p95_ms: float = Field(gt=0)
    consecutive_windows: int = Field(2, ge=1)
    min_samples: int = Field(200, ge=1)


class RetirementRule(Section):
    within_days: int = Field(30, ge=0)  # the base model's published retirement date (Azure) is this close


class RetrainSettings(Section):
    """``retrain_when:``: any rule that fires starts a retrain, unless one ran within ``cooldown``."""

    quality: QualityRule | None = None
    drift: DriftRule | None = None
    new_data: NewDataRule | None = None
    schedule: ScheduleRule | None = None
    latency: LatencyRule | None = None
    base_retirement: RetirementRule | None = None
    cooldown: Duration = "7d"
    starting_traffic: int | None = Field(None, ge=0, le=100)  # the new version's share; default deploy.traffic.new

    def rules(self) -> dict[str, BaseModel]:
        return {name: rule for name in ("quality", "drift", "new_data", "schedule", "latency", "base_retirement")
                if (rule := getattr(self, name)) is not None}


class AutoRollbackSettings(Section):
    """``deploy.auto_rollback``: during a rollout, the new slot going worse than the old one beyond
    these (with ``min_samples`` requests in each) rolls the weights back."""

    error_rate_increase: float | None = Field(0.05, gt=0, le=1)  # absolute: new error rate minus old
    latency_ratio: float | None = Field(2.0, gt=1)  # new p95 over old p95
    quality_drop: float | None = Field(0.1, gt=0, le=1)  # old accuracy minus new, on labelled answers
    min_samples: int = Field(50, ge=1)
    since: Duration = "1h"  # the requests judged: the rollout's, within this
    every: Duration = "30s"  # how often ftp serve looks
