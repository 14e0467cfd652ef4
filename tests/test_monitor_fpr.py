"""The drift trigger's false-positive rate on traffic drawn like the tiny task's training data, and its
power on shifted traffic (benchmarks/monitor_drift_fpr.py measures the same over 1,000 windows; its
results are in benchmarks/results/monitor_drift_fpr*.json and docs/monitoring.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "monitor_drift_fpr.py"


def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("monitor_drift_fpr", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_trigger_on_the_training_distribution_and_fast_on_a_shift() -> None:
    got = bench().measure(windows=150, n=200, shares=(0.0, 0.25, 1.0))["by_shifted_share"]
    assert got["0.0"]["windows_with_any_drift"] <= 0.01  # 0 of 1,000 windows in the recorded run
    assert got["0.0"]["trigger_rate_2_consecutive"] == 0.0
    assert got["0.25"]["trigger_rate_2_consecutive"] >= 0.95  # a quarter of the traffic shifted
    assert got["1.0"]["windows_with_any_drift"] == 1.0  # all shifted: fires at the second window, 400 requests
    assert got["1.0"]["per_feature"]["prompt_nonascii"] == 1.0 and got["1.0"]["per_feature"]["prompt_chars"] == 1.0


def test_small_windows_are_why_min_samples_is_200() -> None:
    """At 50 requests a window the noise alone crosses PSI 0.25 often: the reason for the default minimum."""
    got = bench().measure(windows=150, n=50, shares=(0.0,))["by_shifted_share"]["0.0"]
    assert got["windows_with_any_drift"] > 0.05
