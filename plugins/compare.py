"""Paired comparisons: the fine-tuned model against every other candidate, per metric.

Both candidates answered the same test examples, so the per-example results carry the comparison;
resampling examples (not each candidate apart) keeps the pairing, and the interval is much narrower
than two separate ones would suggest. A metric takes part when both candidates have its per-example
``scores`` (the value is their mean) or its per-example ``stats`` and ``from_stats`` (a corpus metric):

- 0/1 scores: paired bootstrap interval, McNemar's test ("mcnemar_exact" / "mcnemar_chi2");
- other scores: paired bootstrap interval, sign-flip permutation test ("sign_flip");
- corpus metrics: bootstrap of the same example rows for both, approximate randomisation
  ("approximate_randomisation").

Resamples, seed and confidence are the table's (``evaluate.*``; the gate's confidence when it sets one).
"""

from __future__ import annotations

from ftp import hookimpl
from ftp.eval import paired
from ftp.types import Comparison, Metric, ScoredTable

CANDIDATE = "fine-tuned"
TEST_NAMES = {"mcnemar_exact": "McNemar exact", "mcnemar_chi2": "McNemar chi-square",
              "sign_flip": "sign-flip test", "approximate_randomisation": "approximate randomisation"}


def _binary(scores: list[float]) -> bool:
    return all(s in (0, 1) for s in scores)


def _comparison(table: ScoredTable, ours: Metric, theirs: Metric, interval: tuple[float, float, float],
                n: int, test: str, p_value: float, counts: tuple[int, int, int] | None = None) -> Comparison:
    """``interval`` is (difference, low, high) as the paired function computed it; the metrics' own values
    go beside it, and their difference into ``details`` should an evaluator's value disagree with it."""
    difference, low, high = interval
    gap = ours.value - theirs.value
    wins, ties, losses = counts if counts is not None else (None, None, None)
    return Comparison(metric=ours.name, candidate=ours.candidate, baseline=theirs.candidate, difference=difference,
                      low=low, high=high, confidence=table.confidence, n=n,
                      method=f"paired bootstrap, {table.resamples} resamples; {TEST_NAMES.get(test, test)}",
                      p_value=p_value, test=test, wins=wins, ties=ties, losses=losses, resamples=table.resamples,
                      seed=table.seed, candidate_value=ours.value, baseline_value=theirs.value,
                      details={} if abs(gap - difference) <= 1e-9 * max(1.0, abs(gap)) else {"value_difference": gap})


def compare_scores(table: ScoredTable, ours: Metric, theirs: Metric) -> Comparison | None:
    """A mean-of-scores metric: bootstrap interval of the mean difference, McNemar or sign-flip p-value."""
    a, b = ours.scores or [], theirs.scores or []
    if not a or len(a) != len(b):
        return None
    interval = paired.bootstrap_mean_diff(a, b, table.resamples, table.seed, table.confidence)
    if _binary(a) and _binary(b):
        p_value, test = paired.mcnemar(a, b)
    else:
        p_value, test = paired.sign_flip([x - y for x, y in zip(a, b)], table.resamples, table.seed), "sign_flip"
    return _comparison(table, ours, theirs, interval, len(a), test, p_value, paired.win_tie_loss(a, b))


def compare_stats(table: ScoredTable, ours: Metric, theirs: Metric) -> Comparison | None:
    """A corpus metric: bootstrap of the same example rows for both, approximate randomisation p-value."""
    a, b = ours.stats or [], theirs.stats or []
    if ours.from_stats is None or theirs.from_stats is None or not a or len(a) != len(b):
        return None
    if len({len(row) for row in [*a, *b]}) != 1:  # one column count for every row of both
        return None
    interval = paired.bootstrap_corpus_diff(a, b, ours.from_stats, theirs.from_stats, table.resamples,
                                            table.seed, table.confidence)
    p_value = paired.approximate_randomisation(a, b, ours.from_stats, theirs.from_stats, table.resamples, table.seed)
    return _comparison(table, ours, theirs, interval, len(a), "approximate_randomisation", p_value)


def compare(table: ScoredTable, ours: Metric, theirs: Metric) -> Comparison | None:
    """Per-example scores first (the value is their mean), else corpus statistics, else nothing to pair."""
    if ours.scores and theirs.scores:
        return compare_scores(table, ours, theirs)
    if ours.stats and theirs.stats:
        return compare_stats(table, ours, theirs)
    return None


@hookimpl
def ftp_compare(table: ScoredTable) -> list[Comparison]:
    out: list[Comparison] = []
    for ours in [m for m in table.metrics if m.candidate == CANDIDATE]:
        for baseline in [c for c in table.candidates if c != CANDIDATE]:
            theirs = table.metric(baseline, ours.name)
            found = compare(table, ours, theirs) if theirs is not None else None
            if found is not None:
                out.append(found)
    return out
