"""The promotion gate: thresholds from the pipeline file's ``gate:`` section.

- ``min`` / ``max`` bound the fine-tuned model's value.
- ``min_gain_over_base`` asks it to beat the base model by that much in the metric's good direction
  (up for accuracy, down for loss).
- ``no_regression_vs: champion|base`` asks it to be no worse than that model by more than
  ``max_regression`` (default 0); with no champion yet (nothing deployed) the check passes.

Gains are judged on the point estimate, or, with ``gate.confidence`` set, on the lower bound of the
gain's interval from the paired comparison (``report.comparison``): "beats base by 0.05" then means
"beats it by 0.05 even at the pessimistic end of the interval", so a lucky test split does not promote
a model. A metric without a paired comparison (no per-example scores) falls back to its point
estimate, and the reason says so. Every reason shows the point estimate and, when there is one, the
interval, so a failed gate tells the reader how far off it was and how sure the numbers are.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ftp import hookimpl
from ftp.types import EvalReport, GateCheck

CANDIDATE = "fine-tuned"
SLACK = 1e-9  # 0.75 - 0.70 is 0.04999999999999993: rounding must not fail a "gain of 0.05" rule


class Gain(NamedTuple):
    """The fine-tuned model's gain over ``baseline`` in the metric's good direction, with the gain's
    interval (``low``/``high`` at ``level``) when a paired comparison exists."""

    metric: str
    baseline: str
    point: float
    baseline_value: float
    value: float
    low: float | None = None
    high: float | None = None
    level: float | None = None

    def describe(self) -> str:
        """'exact_match gain over base +0.3125 [95% CI +0.2000, +0.4250] (0.4062 -> 0.7188)'."""
        ci = f" [{self.level:.0%} CI {self.low:+.4f}, {self.high:+.4f}]" if self.low is not None else ""
        return (f"{self.metric} gain over {self.baseline} {self.point:+.4f}{ci} "
                f"({self.baseline_value:.4f} -> {self.value:.4f})")


def gain_over(report: EvalReport, metric: str, baseline: str, value: float, other: float) -> Gain:
    """The gain and, from the comparison the core made, its interval (turned round for lower-is-better
    metrics: the comparison's interval is of candidate minus baseline)."""
    sign = 1.0 if report.higher_is_better.get(metric, True) else -1.0
    point = sign * (value - other)
    found = report.comparison(metric, baseline)
    if found is None:
        return Gain(metric, baseline, point, other, value)
    low, high = (found.low, found.high) if sign > 0 else (-found.high, -found.low)
    return Gain(metric, baseline, point, other, value, low, high, found.confidence)


def judged(gain: Gain, confidence: float | None) -> tuple[str, float, str]:
    """(what is judged, its value, a note for the reason): the interval's lower bound with a confidence
    and an interval, else the point estimate, saying why when an interval was wanted or exists."""
    if gain.low is None:
        note = (f" (no paired interval for {gain.metric}: it has no per-example scores or statistics, so the point estimate "
                f"is judged)" if confidence is not None else "")
        return "point estimate", gain.point, note
    if confidence is None:
        return "point estimate", gain.point, " (gate.confidence is not set, so the point estimate is judged)"
    note = "" if gain.level is None or abs(gain.level - confidence) < 1e-9 else \
        f" (the interval is at {gain.level:.0%}, gate.confidence is {confidence:.0%})"
    return "lower bound", gain.low, note


def check_bounds(metric: str, value: float, rule: dict[str, Any]) -> list[GateCheck]:
    checks = []
    if rule.get("min") is not None:
        ok = value >= rule["min"]
        checks.append(GateCheck(name=f"{metric}.min", passed=ok,
                                reason=f"{metric} {value:.4f} {'>=' if ok else '<'} min {rule['min']}"))
    if rule.get("max") is not None:
        ok = value <= rule["max"]
        checks.append(GateCheck(name=f"{metric}.max", passed=ok,
                                reason=f"{metric} {value:.4f} {'<=' if ok else '>'} max {rule['max']}"))
    return checks


def check_gain(report: EvalReport, metric: str, value: float, required: float,
               confidence: float | None) -> GateCheck:
    """min_gain_over_base: the judged gain (point or lower bound) reaches ``required``."""
    name = f"{metric}.min_gain_over_base"
    base = report.metrics.get("base", {}).get(metric)
    if base is None:
        return GateCheck(name=name, passed=False,
                         reason=f"{metric}: no base-model value (add 'base' to evaluate.compare_to)")
    gain = gain_over(report, metric, "base", value, base)
    label, judged_value, note = judged(gain, confidence)
    ok = judged_value >= required - SLACK
    return GateCheck(name=name, passed=ok, reason=f"{gain.describe()}: {label} {judged_value:+.4f} "
                                                  f"{'>=' if ok else '<'} required {required}{note}")


def check_regression(report: EvalReport, metric: str, value: float, versus: str, allowed: float,
                     confidence: float | None) -> GateCheck:
    """no_regression_vs: the judged gain over ``versus`` is at least -max_regression."""
    name = f"{metric}.no_regression_vs"
    if versus not in report.metrics:
        if versus == "champion":
            return GateCheck(name=name, passed=True, reason=f"{metric}: no champion to compare with yet: passes")
        return GateCheck(name=name, passed=False,
                         reason=f"{metric}: no {versus}-model value (add '{versus}' to evaluate.compare_to)")
    other = report.metrics[versus].get(metric)
    if other is None:
        return GateCheck(name=name, passed=False,
                         reason=f"{metric}: the {versus} model has no {metric} value, so no_regression_vs "
                                f"{versus} cannot be checked")
    gain = gain_over(report, metric, versus, value, other)
    label, judged_value, note = judged(gain, confidence)
    ok = judged_value >= -allowed - SLACK
    return GateCheck(name=name, passed=ok,
                     reason=f"{gain.describe()}: {label} {judged_value:+.4f} {'>=' if ok else '<'} allowed "
                            f"{0.0 - allowed:+.4f} (max_regression {allowed}){note}")


def check_metric(report: EvalReport, metric: str, rule: dict[str, Any],
                 confidence: float | None = None) -> list[GateCheck]:
    """Every check ``rule`` asks of ``metric`` (one ``gate:`` entry)."""
    value = report.metrics.get(CANDIDATE, {}).get(metric)
    if value is None:
        pairwise = next((c for c in report.comparisons if c.metric == metric and c.candidate == CANDIDATE
                         and c.candidate_value is not None), None)
        if pairwise is None:
            return [GateCheck(name=metric, passed=False, reason=f"{metric}: the evaluation produced no value")]
        # a metric only a pairwise comparison gives (judge_preference: the win rate against a baseline)
        return check_bounds(f"{metric} vs {pairwise.baseline}", float(pairwise.candidate_value or 0.0), rule)
    checks = check_bounds(metric, value, rule)
    if rule.get("min_gain_over_base") is not None:
        checks.append(check_gain(report, metric, value, float(rule["min_gain_over_base"]), confidence))
    if rule.get("no_regression_vs") is not None:
        checks.append(check_regression(report, metric, value, str(rule["no_regression_vs"]),
                                       float(rule.get("max_regression") or 0.0), confidence))
    return checks


@hookimpl
def ftp_gate(report: EvalReport, thresholds: dict[str, dict[str, Any]], confidence: float | None) -> list[GateCheck]:
    return [c for metric, rule in thresholds.items() for c in check_metric(report, metric, rule, confidence)]
