"""Per-example scores and ``ftp_compare``: candidates compared pairwise on the same test examples."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import invoke

from ftp import hookimpl
from ftp.eval.paired import approximate_randomisation, bootstrap_corpus_diff, bootstrap_mean_diff, mcnemar, sign_flip
from ftp.plugins.compare import ftp_compare
from ftp.types import Comparison, Metric, ScoredTable


def table(resamples: int = 2000, seed: int = 0, confidence: float = 0.95, **scores: list[float]) -> ScoredTable:
    metrics = [Metric(name="exact_match", value=sum(s) / len(s), candidate=c.replace("_", "-"), n=len(s), scores=s)
               for c, s in scores.items()]
    return ScoredTable(n=len(next(iter(scores.values()))), candidates=[m.candidate for m in metrics], metrics=metrics,
                       resamples=resamples, seed=seed, confidence=confidence)


def test_the_builtin_compares_the_fine_tuned_model_with_each_other_candidate() -> None:
    found = ftp_compare(table(fine_tuned=[1.0, 1.0, 0.0, 1.0], base=[0.0, 1.0, 0.0, 0.0], other=[1.0] * 4))
    assert [(c.baseline, c.difference) for c in found] == [("base", 0.5), ("other", -0.25)]
    assert all(c.n == 4 and c.low <= c.difference <= c.high for c in found)
    vs_base = found[0]
    assert (vs_base.wins, vs_base.ties, vs_base.losses) == (2, 2, 0)
    assert (vs_base.candidate_value, vs_base.baseline_value) == (0.75, 0.25)
    assert (vs_base.resamples, vs_base.seed, vs_base.confidence) == (2000, 0, 0.95)
    assert vs_base.test == "mcnemar_exact" and vs_base.p_value == pytest.approx(0.5)  # 2 discordant, both ours
    assert vs_base.method == "paired bootstrap, 2000 resamples; McNemar exact"
    # a metric without per-example scores, or with a different count, is not paired
    no_scores = ScoredTable(n=2, candidates=["fine-tuned", "base"], metrics=[
        Metric(name="loss", value=1.0, candidate="fine-tuned", n=2), Metric(name="loss", value=2.0, candidate="base", n=2)])
    assert ftp_compare(no_scores) == []
    assert ftp_compare(table(fine_tuned=[1.0, 0.0, 1.0], base=[1.0, 0.0])) == []


def test_many_discordant_pairs_get_the_chi_square_and_other_scores_the_sign_flip_test() -> None:
    ours, theirs = [1.0] * 30 + [0.0] * 10 + [1.0] * 20, [0.0] * 30 + [1.0] * 10 + [1.0] * 20
    [c] = ftp_compare(table(fine_tuned=ours, base=theirs))
    assert c.test == "mcnemar_chi2" and c.method.endswith("; McNemar chi-square")
    assert c.p_value == pytest.approx(mcnemar(ours, theirs)[0]) and c.p_value < 0.01
    rng = random.Random(1)
    ours = [rng.random() for _ in range(50)]  # token F1-like scores in [0, 1]
    theirs = [max(0.0, x - rng.random() * 0.2) for x in ours]
    [c] = ftp_compare(table(resamples=3000, seed=7, fine_tuned=ours, base=theirs))
    assert c.test == "sign_flip" and c.method == "paired bootstrap, 3000 resamples; sign-flip test"
    assert c.p_value == sign_flip([x - y for x, y in zip(ours, theirs)], 3000, 7)
    assert (c.low, c.high) == bootstrap_mean_diff(ours, theirs, 3000, 7, 0.95)[1:]
    assert c.wins == sum(x > y for x, y in zip(ours, theirs)) and c.wins + c.ties + c.losses == 50


def test_the_tables_resamples_seed_and_confidence_decide_the_interval() -> None:
    rng = random.Random(3)
    b = [float(rng.random() < 0.4) for _ in range(400)]
    a = [1.0 if x or rng.random() < 0.25 else 0.0 for x in b]  # right wherever b is, and on 25% more
    [c] = ftp_compare(table(fine_tuned=a, base=b))
    assert c.low < 0.15 < c.high and c.high - c.low < 0.1  # the true gain: 25% of the 60% b gets wrong
    assert ftp_compare(table(fine_tuned=a, base=b)) == [c]  # seeded: the same table, the same interval
    [other_seed] = ftp_compare(table(seed=1, fine_tuned=a, base=b))
    assert (other_seed.low, other_seed.high) != (c.low, c.high) and other_seed.seed == 1
    [narrow] = ftp_compare(table(confidence=0.8, fine_tuned=a, base=b))
    assert c.low < narrow.low and narrow.high < c.high and narrow.confidence == 0.8


def test_pairing_narrows_the_interval_against_resampling_each_candidate_apart() -> None:
    rng = random.Random(0)
    b = [float(rng.random() < 0.5) for _ in range(200)]
    a = [x if rng.random() < 0.95 else 1.0 - x for x in b]  # the same answers, bar 5%
    [c] = ftp_compare(table(fine_tuned=a, base=b))
    assert c.high - c.low < 0.09  # two independent 95% intervals of a share near 0.5 would span about 0.2


def ratio(s: Sequence[float]) -> float:
    return s[0] / s[1] if s[1] else 0.0


def corpus(candidate: str, rows: list[list[float]], from_stats: Any = ratio) -> Metric:
    return Metric(name="micro_f1", value=ratio([sum(col) for col in zip(*rows)]), candidate=candidate, n=len(rows),
                  stats=rows, from_stats=from_stats)


def test_corpus_metrics_are_compared_on_the_same_rows_with_approximate_randomisation() -> None:
    rng = random.Random(5)
    totals = [float(rng.randint(2, 9)) for _ in range(60)]
    ours = [[float(sum(rng.random() < 0.7 for _ in range(int(t)))), t] for t in totals]
    theirs = [[float(sum(rng.random() < 0.5 for _ in range(int(t)))), t] for t in totals]
    metrics = [corpus("fine-tuned", ours), corpus("base", theirs)]
    [c] = ftp_compare(ScoredTable(n=60, candidates=["fine-tuned", "base"], metrics=metrics, resamples=2000, seed=3))
    assert c.test == "approximate_randomisation" and c.method == "paired bootstrap, 2000 resamples; approximate randomisation"
    assert c.difference == pytest.approx(metrics[0].value - metrics[1].value)
    assert (c.difference, c.low, c.high) == pytest.approx(bootstrap_corpus_diff(ours, theirs, ratio, ratio, 2000, 3))
    assert c.p_value == approximate_randomisation(ours, theirs, ratio, ratio, 2000, 3)
    assert c.low <= c.difference <= c.high and (c.wins, c.ties, c.losses) == (None, None, None)
    assert (c.candidate_value, c.baseline_value, c.details) == (metrics[0].value, metrics[1].value, {})
    # stats without from_stats, different row counts, or different column counts are not paired
    for theirs_metric in [corpus("base", theirs, from_stats=None), corpus("base", theirs[:-1]),
                          corpus("base", [row + [1.0] for row in theirs])]:
        assert ftp_compare(ScoredTable(n=60, candidates=["fine-tuned", "base"],
                                       metrics=[metrics[0], theirs_metric])) == []


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
