"""The built-in gate on hand-built reports: point estimates, interval bounds, lower-is-better, champions."""

from __future__ import annotations

from typing import Any

from ftp.config.settings import GateSettings
from ftp.plugins.gate import ftp_gate
from ftp.types import Comparison, EvalReport, GateCheck


def comparison(metric: str, baseline: str, difference: float, low: float, high: float,
               confidence: float = 0.95) -> Comparison:
    return Comparison(metric=metric, candidate="fine-tuned", baseline=baseline, difference=difference, low=low,
                      high=high, confidence=confidence, n=64, method="paired bootstrap, 10000 resamples")


def report(comparisons: list[Comparison] | None = None, **metrics: dict[str, float]) -> EvalReport:
    return EvalReport(metrics={name.replace("_", "-"): values for name, values in metrics.items()},
                      higher_is_better={"exact_match": True, "loss": False, "bleu": True}, n=64,
                      comparisons=comparisons or [])


EM = report([comparison("exact_match", "base", 0.3125, 0.2, 0.425)],
            fine_tuned={"exact_match": 0.71875, "loss": 0.9}, base={"exact_match": 0.40625, "loss": 1.4})


def gate(rep: EvalReport, rules: dict[str, dict[str, Any]], confidence: float | None = None) -> list[GateCheck]:
    """Rules as the runner hands them over: validated by GateSettings, then dumped without the unset keys."""
    settings = GateSettings.model_validate(rules)
    return ftp_gate(report=rep, thresholds={k: v.model_dump(exclude_none=True) for k, v in settings.rules().items()},
                    confidence=confidence)


def test_min_and_max_judge_the_fine_tuned_value() -> None:
    checks = gate(EM, {"exact_match": {"min": 0.7}, "loss": {"max": 0.8}})
    assert [(c.name, c.passed, c.reason) for c in checks] == [
        ("exact_match.min", True, "exact_match 0.7188 >= min 0.7"),
        ("loss.max", False, "loss 0.9000 > max 0.8")]


def test_with_confidence_the_gain_is_judged_on_the_lower_bound_of_its_interval() -> None:
    [check] = gate(EM, {"exact_match": {"min_gain_over_base": 0.05}}, confidence=0.95)
    assert check.passed and check.name == "exact_match.min_gain_over_base"
    assert check.reason == ("exact_match gain over base +0.3125 [95% CI +0.2000, +0.4250] (0.4062 -> 0.7188): "
                            "lower bound +0.2000 >= required 0.05")
    # the point estimate clears 0.25, the pessimistic end of the interval does not
    [check] = gate(EM, {"exact_match": {"min_gain_over_base": 0.25}}, confidence=0.95)
    assert not check.passed and "lower bound +0.2000 < required 0.25" in check.reason


def test_without_confidence_the_point_estimate_is_judged_and_the_interval_still_shown() -> None:
    [check] = gate(EM, {"exact_match": {"min_gain_over_base": 0.25}})
    assert check.passed
    assert check.reason.startswith("exact_match gain over base +0.3125 [95% CI +0.2000, +0.4250] (0.4062 -> 0.7188): "
                                   "point estimate +0.3125 >= required 0.25")
    assert "gate.confidence is not set" in check.reason


def test_without_a_comparison_the_gate_falls_back_to_the_point_estimate_and_says_so() -> None:
    bare = report(fine_tuned={"exact_match": 0.5}, base={"exact_match": 0.4})
    [check] = gate(bare, {"exact_match": {"min_gain_over_base": 0.1}}, confidence=0.95)
    assert check.passed  # 0.5 - 0.4 is 0.09999999999999998: rounding does not fail the rule
    assert check.reason.startswith("exact_match gain over base +0.1000 (0.4000 -> 0.5000): point estimate +0.1000 "
                                   ">= required 0.1")
    assert "no paired interval" in check.reason and "[" not in check.reason
    [check] = gate(bare, {"exact_match": {"min_gain_over_base": 0.1}})
    assert check.reason == "exact_match gain over base +0.1000 (0.4000 -> 0.5000): point estimate +0.1000 >= required 0.1"


def test_a_lower_is_better_metric_gains_by_going_down_and_its_interval_turns_round() -> None:
    # loss 1.4 -> 0.9; the comparison is of fine-tuned minus base: -0.5 [-0.7, -0.3]
    rep = report([comparison("loss", "base", -0.5, -0.7, -0.3)], fine_tuned={"loss": 0.9}, base={"loss": 1.4})
    [check] = gate(rep, {"loss": {"min_gain_over_base": 0.2}}, confidence=0.95)
    assert check.passed
    assert check.reason == ("loss gain over base +0.5000 [95% CI +0.3000, +0.7000] (1.4000 -> 0.9000): "
                            "lower bound +0.3000 >= required 0.2")
    [check] = gate(rep, {"loss": {"min_gain_over_base": 0.4}}, confidence=0.95)
    assert not check.passed and "lower bound +0.3000 < required 0.4" in check.reason
    worse = report(fine_tuned={"loss": 1.5}, base={"loss": 1.4})
    [check] = gate(worse, {"loss": {"min_gain_over_base": 0.0}})
    assert not check.passed and "gain over base -0.1000" in check.reason


def test_min_gain_without_a_base_model_fails_with_the_fix() -> None:
    [check] = gate(report(fine_tuned={"exact_match": 0.9}), {"exact_match": {"min_gain_over_base": 0.0}})
    assert not check.passed and "add 'base' to evaluate.compare_to" in check.reason


CHAMPION = report([comparison("exact_match", "champion", -0.01, -0.05, 0.03)],
                  fine_tuned={"exact_match": 0.69}, champion={"exact_match": 0.70})


def test_no_regression_vs_champion_allows_max_regression_on_the_lower_bound() -> None:
    rule = {"exact_match": {"no_regression_vs": "champion", "max_regression": 0.02}}
    [check] = gate(CHAMPION, rule, confidence=0.95)
    assert check.name == "exact_match.no_regression_vs" and not check.passed
    assert check.reason == ("exact_match gain over champion -0.0100 [95% CI -0.0500, +0.0300] (0.7000 -> 0.6900): "
                            "lower bound -0.0500 < allowed -0.0200 (max_regression 0.02)")
    [check] = gate(CHAMPION, rule)  # the point estimate is 0.01 worse: within the 0.02 allowed
    assert check.passed and "point estimate -0.0100 >= allowed -0.0200" in check.reason
    [check] = gate(CHAMPION, {"exact_match": {"no_regression_vs": "champion", "max_regression": 0.05}}, 0.95)
    assert check.passed and "lower bound -0.0500 >= allowed -0.0500" in check.reason
    [check] = gate(CHAMPION, {"exact_match": {"no_regression_vs": "champion"}})  # max_regression 0: no worse at all
    assert not check.passed and "point estimate -0.0100 < allowed +0.0000" in check.reason


def test_no_regression_vs_champion_passes_when_nothing_is_deployed_yet() -> None:
    [check] = gate(EM, {"exact_match": {"no_regression_vs": "champion"}}, confidence=0.95)
    assert check.passed and check.reason == "exact_match: no champion to compare with yet: passes"


def test_no_regression_vs_base_on_a_lower_is_better_metric() -> None:
    rep = report([comparison("loss", "base", 0.05, -0.02, 0.12)], fine_tuned={"loss": 1.45}, base={"loss": 1.4})
    [check] = gate(rep, {"loss": {"no_regression_vs": "base", "max_regression": 0.1}}, confidence=0.95)
    assert not check.passed  # the gain is -0.05 [-0.12, +0.02]: its lower bound is more than 0.1 worse
    assert check.reason == ("loss gain over base -0.0500 [95% CI -0.1200, +0.0200] (1.4000 -> 1.4500): "
                            "lower bound -0.1200 < allowed -0.1000 (max_regression 0.1)")
    [check] = gate(rep, {"loss": {"no_regression_vs": "base", "max_regression": 0.1}})
    assert check.passed
    [check] = gate(report(fine_tuned={"loss": 1.0}), {"loss": {"no_regression_vs": "base"}})
    assert not check.passed and "add 'base' to evaluate.compare_to" in check.reason


def test_a_missing_value_fails_and_rules_combine() -> None:
    [check] = gate(EM, {"bleu": {"min": 10}})
    assert not check.passed and check.reason == "bleu: the evaluation produced no value"
    rep = report([comparison("exact_match", "base", 0.3125, 0.2, 0.425)],
                 fine_tuned={"exact_match": 0.71875}, base={"exact_match": 0.40625}, champion={"loss": 1.0})
    checks = gate(rep, {"exact_match": {"min": 0.5, "min_gain_over_base": 0.1, "no_regression_vs": "champion"}}, 0.95)
    assert [(c.name, c.passed) for c in checks] == [("exact_match.min", True), ("exact_match.min_gain_over_base", True),
                                                   ("exact_match.no_regression_vs", False)]
    assert "the champion model has no exact_match value" in checks[2].reason


def test_an_interval_at_another_confidence_is_named() -> None:
    rep = report([comparison("exact_match", "base", 0.3125, 0.22, 0.40, confidence=0.9)],
                 fine_tuned={"exact_match": 0.71875}, base={"exact_match": 0.40625})
    [check] = gate(rep, {"exact_match": {"min_gain_over_base": 0.05}}, confidence=0.95)
    assert check.passed and "[90% CI +0.2200, +0.4000]" in check.reason
    assert "the interval is at 90%, gate.confidence is 95%" in check.reason


def test_a_pairwise_only_metric_is_gated_on_its_comparison() -> None:
    from ftp.plugins.gate import ftp_gate
    from ftp.types import Comparison, EvalReport

    judge = Comparison(metric="judge_preference", candidate="fine-tuned", baseline="base", difference=0.4, low=0.2,
                       high=0.6, n=20, method="judge", candidate_value=0.7)
    report = EvalReport(metrics={"fine-tuned": {}, "base": {}}, higher_is_better={}, n=20, comparisons=[judge])
    (passed,) = ftp_gate(report, {"judge_preference": {"min": 0.6}}, None)
    assert passed.passed and "judge_preference vs base 0.7000 >= min 0.6" in passed.reason
    (failed,) = ftp_gate(report, {"judge_preference": {"min": 0.8}}, None)
    assert not failed.passed
