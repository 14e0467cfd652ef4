"""Per-example scores and ``ftp_compare``: candidates compared pairwise on the same test examples."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from conftest import invoke

from ftp import hookimpl
from ftp.plugins.compare import ftp_compare, paired_bootstrap
from ftp.types import Comparison, Metric, ScoredTable


def test_the_paired_interval_is_exact_at_the_extremes_and_covers_a_known_difference() -> None:
    assert paired_bootstrap([1.0] * 20, [0.0] * 20) == (1.0, 1.0, 1.0)
    assert paired_bootstrap([0.5] * 20, [0.5] * 20) == (0.0, 0.0, 0.0)
    rng = random.Random(3)
    b = [float(rng.random() < 0.4) for _ in range(400)]
    a = [1.0 if x or rng.random() < 0.25 else 0.0 for x in b]  # right wherever b is, and on 25% more
    mean, low, high = paired_bootstrap(a, b)
    assert low < 0.15 < high and high - low < 0.1  # the true gain: 25% of the 60% b gets wrong
    assert paired_bootstrap(a, b) == (mean, low, high)  # seeded: the same table, the same interval


def test_pairing_narrows_the_interval_against_resampling_each_candidate_apart() -> None:
    rng = random.Random(0)
    b = [float(rng.random() < 0.5) for _ in range(200)]
    a = [x if rng.random() < 0.95 else 1.0 - x for x in b]  # the same answers, bar 5%
    _, low, high = paired_bootstrap(a, b)
    assert high - low < 0.09  # two independent 95% intervals of a share near 0.5 would span about 0.2


def table(**scores: list[float]) -> ScoredTable:
    metrics = [Metric(name="exact_match", value=sum(s) / len(s), candidate=c.replace("_", "-"), n=len(s), scores=s)
               for c, s in scores.items()]
    return ScoredTable(n=len(next(iter(scores.values()))), candidates=[m.candidate for m in metrics], metrics=metrics)


def test_the_builtin_compares_the_fine_tuned_model_with_each_other_candidate() -> None:
    found = ftp_compare(table(fine_tuned=[1.0, 1.0, 0.0, 1.0], base=[0.0, 1.0, 0.0, 0.0], other=[1.0] * 4))
    assert [(c.baseline, c.difference) for c in found] == [("base", 0.5), ("other", -0.25)]
    assert all(c.n == 4 and c.low <= c.difference <= c.high for c in found)
    # a metric without per-example scores, or with a different count, is not paired
    no_scores = ScoredTable(n=2, candidates=["fine-tuned", "base"], metrics=[
        Metric(name="loss", value=1.0, candidate="fine-tuned", n=2), Metric(name="loss", value=2.0, candidate="base", n=2)])
    assert ftp_compare(no_scores) == []


class Judge:
    """A pairwise judge: it needs both candidates' scores at once, which is what the hook gives it."""

    seen: list[ScoredTable] = []

    @hookimpl
    def ftp_compare(self, table: ScoredTable) -> list[Comparison]:
        self.seen.append(table)
        ours, theirs = table.scores("fine-tuned", "exact_match"), table.scores("base", "exact_match")
        assert ours is not None and theirs is not None
        won = sum(a > b for a, b in zip(ours, theirs)) / table.n
        return [Comparison(metric="exact_match", candidate="fine-tuned", baseline="base", difference=won, low=won,
                           high=won, n=table.n, method="examples won")]


def test_a_run_pairs_its_candidates_and_a_plugin_sees_the_whole_table(project: Path, pm: Any) -> None:
    pm.register(Judge(), name="judge")
    result = invoke("run", "pipeline.yaml", "--quiet", "--steps", "validate,split,train,evaluate")
    assert result.exit_code == 0, result.output + result.stderr
    run_dir = next((project / "runs" / "tiny").iterdir())
    report = json.loads((run_dir / "eval.json").read_text())
    seen = Judge.seen[-1]
    assert set(seen.candidates) == {"fine-tuned", "base"} and seen.n == report["n"] == 6
    assert all(len(m.scores or []) == 6 for m in seen.metrics if m.name == "exact_match")
    by_method = {c["method"].split(",")[0]: c for c in report["comparisons"]}
    assert set(by_method) == {"paired bootstrap", "examples won"}
    paired = by_method["paired bootstrap"]
    ft, base = report["metrics"]["fine-tuned"]["exact_match"], report["metrics"]["base"]["exact_match"]
    assert paired["plugin"] == "ftp.plugins.compare" and by_method["examples won"]["plugin"] == "judge"
    assert abs(paired["difference"] - (ft - base)) < 1e-9 and paired["low"] <= paired["difference"] <= paired["high"]
    state = json.loads((run_dir / "state.json").read_text())
    assert len(state["steps"]["evaluate"]["outputs"]["report"]["comparisons"]) == 2
