"""Paired bootstrap intervals: the fine-tuned model against every other candidate, per metric.

Both candidates answered the same test examples, so the per-example differences carry the comparison;
resampling examples (not each candidate apart) keeps the pairing, and the interval is much narrower
than two separate ones would suggest. Only metrics whose evaluator gave per-example scores take part.
"""

from __future__ import annotations

from ftp import hookimpl
from ftp.types import Comparison, ScoredTable

CANDIDATE = "fine-tuned"
RESAMPLES = 2000
SEED = 0  # the same table always gives the same interval
CONFIDENCE = 0.95


def paired_bootstrap(a: list[float], b: list[float], resamples: int = RESAMPLES, seed: int = SEED,
                     confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean of a - b, lower, upper): the percentile interval of the resampled mean differences."""
    import numpy as np

    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(diff.mean()), float(low), float(high)


@hookimpl
def ftp_compare(table: ScoredTable) -> list[Comparison]:
    if CANDIDATE not in table.candidates:
        return []
    out = []
    for metric in sorted({m.name for m in table.metrics if m.candidate == CANDIDATE and m.scores}):
        ours = table.scores(CANDIDATE, metric) or []
        for baseline in [c for c in table.candidates if c != CANDIDATE]:
            theirs = table.scores(baseline, metric)
            if not theirs or len(theirs) != len(ours):
                continue
            mean, low, high = paired_bootstrap(ours, theirs)
            out.append(Comparison(metric=metric, candidate=CANDIDATE, baseline=baseline, difference=mean, low=low,
                                  high=high, confidence=CONFIDENCE, n=len(ours),
                                  method=f"paired bootstrap, {RESAMPLES} resamples"))
    return out
