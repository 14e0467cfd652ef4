"""The promotion gate: thresholds from the pipeline file's ``gate:`` section.

``min`` / ``max`` bound the fine-tuned model's value; ``min_gain_over_base`` asks it to beat the
base model by that much in the metric's good direction (up for accuracy, down for loss).
"""

from __future__ import annotations

from ftp import hookimpl
from ftp.types import EvalReport, GateCheck

CANDIDATE = "fine-tuned"


def check_metric(report: EvalReport, metric: str, rule: dict[str, float]) -> list[GateCheck]:
    value = report.metrics.get(CANDIDATE, {}).get(metric)
    if value is None:
        return [GateCheck(name=metric, passed=False, reason=f"{metric}: the evaluation produced no value")]
    checks = []
    if "min" in rule:
        ok = value >= rule["min"]
        checks.append(GateCheck(name=f"{metric}.min", passed=ok,
                                reason=f"{metric} {value:.4f} {'>=' if ok else '<'} min {rule['min']}"))
    if "max" in rule:
        ok = value <= rule["max"]
        checks.append(GateCheck(name=f"{metric}.max", passed=ok,
                                reason=f"{metric} {value:.4f} {'<=' if ok else '>'} max {rule['max']}"))
    if "min_gain_over_base" in rule:
        base = report.metrics.get("base", {}).get(metric)
        if base is None:
            checks.append(GateCheck(name=f"{metric}.min_gain_over_base", passed=False,
                                    reason=f"{metric}: no base-model value (add 'base' to evaluate.compare_to)"))
        else:
            sign = 1 if report.higher_is_better.get(metric, True) else -1
            gain = sign * (value - base)
            ok = gain >= rule["min_gain_over_base"]
            checks.append(GateCheck(name=f"{metric}.min_gain_over_base", passed=ok,
                                    reason=f"{metric} gain over base {gain:+.4f} ({base:.4f} -> {value:.4f}) "
                                           f"{'>=' if ok else '<'} required {rule['min_gain_over_base']}"))
    return checks


@hookimpl
def ftp_gate(report: EvalReport, thresholds: dict[str, dict[str, float]]) -> list[GateCheck]:
    return [c for metric, rule in thresholds.items() for c in check_metric(report, metric, rule)]
