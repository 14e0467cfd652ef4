"""Paired statistics: two candidates scored on the same test examples, compared example by example.

Pairing is the point: both models answered the same prompts, so the per-example differences carry
the comparison and the resampling keeps each example's two results together (resampling each model
apart would ignore that they share the hard examples, and give intervals far too wide).

- 0/1 scores: McNemar's test on the discordant pairs (exact binomial below 25 of them).
- Other per-example scores (the metric is their mean): a sign-flip permutation test of the mean
  difference, and a paired bootstrap percentile interval.
- Corpus metrics (BLEU, chrF, macro-F1: the value is a function of column sums of per-example
  statistics): a bootstrap that draws example indices once per replicate and sums the same rows for
  both candidates, and approximate randomisation (sacrebleu's paired AR convention).

Every random function takes ``resamples`` and ``seed`` (a ``numpy.random.default_rng``) so one table
always gives the same numbers. Work is done in chunks of replicates so 10,000 x n stays bounded in
memory. numpy (and scipy for the exact binomial) are imported inside the functions: ``import ftp``
stays light.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

RESAMPLES = 10_000
CONFIDENCE = 0.95
EXACT_BELOW = 25  # discordant pairs: the exact binomial test below this, chi-square from it on
CHUNK_CELLS = 2_000_000  # replicates x examples per chunk (16 MB of float64)
FromStats = Callable[[Sequence[float]], float]


def _rtol(value: float) -> float:
    """Resampled statistics equal to the observed one up to rounding count as "as extreme" (as scipy does)."""
    return 1e-12 * max(1.0, abs(value))


def _chunks(resamples: int, n: int) -> Iterator[int]:
    """Sizes of the replicate chunks: as many rows as fit CHUNK_CELLS, at least one."""
    step = max(1, CHUNK_CELLS // max(n, 1))
    for start in range(0, resamples, step):
        yield min(step, resamples - start)


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """The percentile interval: the (1-c)/2 and (1+c)/2 quantiles of the replicates."""
    import numpy as np

    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _check_pair(a: Sequence[Any], b: Sequence[Any]) -> None:
    if len(a) != len(b):
        raise ValueError(f"paired results need the same examples: {len(a)} against {len(b)}")


def mcnemar(a: Sequence[float], b: Sequence[float]) -> tuple[float, str]:
    """(two-sided p-value, test name) of McNemar's test for 0/1 scores of ``a`` and ``b``.

    Only discordant examples count: b = a right and b wrong, c = the reverse. Below 25 of them the
    exact binomial test (``scipy.stats.binomtest(b, b+c, 0.5)``, "mcnemar_exact"); from 25 on the
    chi-square with continuity correction, (|b-c|-1)^2/(b+c) on one degree of freedom ("mcnemar_chi2";
    the correction is floored at 0 so b == c gives p = 1). No discordant pair: p = 1."""
    _check_pair(a, b)
    if any(x not in (0, 1) for x in (*a, *b)):
        raise ValueError("McNemar's test needs 0/1 scores")
    only_a = sum(1 for x, y in zip(a, b) if x == 1 and y == 0)
    only_b = sum(1 for x, y in zip(a, b) if x == 0 and y == 1)
    discordant = only_a + only_b
    if discordant == 0:
        return 1.0, "mcnemar_exact"
    if discordant < EXACT_BELOW:
        from scipy.stats import binomtest

        return float(min(1.0, binomtest(only_a, discordant, 0.5).pvalue)), "mcnemar_exact"
    stat = max(0.0, abs(only_a - only_b) - 1.0) ** 2 / discordant
    return math.erfc(math.sqrt(stat / 2)), "mcnemar_chi2"  # the chi-square(1) survival function


def sign_flip(diff: Sequence[float], resamples: int = RESAMPLES, seed: int = 0) -> float:
    """Two-sided permutation p-value of the mean paired difference: under "no difference" each
    example's difference is as likely negated, so random sign flips give the null distribution.
    p = (count of |mean*| >= |mean| + 1) / (resamples + 1)."""
    import numpy as np

    d = np.asarray(diff, dtype=float)
    n = len(d)
    if n == 0:
        return 1.0
    observed = abs(float(d.mean()))
    total, rng, extreme = float(d.sum()), np.random.default_rng(seed), 0
    for rows in _chunks(resamples, n):
        flips = rng.random((rows, n)) < 0.5  # True: negate this example's difference
        means = (total - 2.0 * (flips.astype(float) @ d)) / n
        extreme += int(np.count_nonzero(np.abs(means) >= observed - _rtol(observed)))
    return (extreme + 1) / (resamples + 1)


def bootstrap_mean_diff(a: Sequence[float], b: Sequence[float], resamples: int = RESAMPLES, seed: int = 0,
                        confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean of a - b, low, high): the percentile interval of the mean difference over bootstrap
    replicates of the example indices (the same index picks both candidates' scores)."""
    import numpy as np

    _check_pair(a, b)
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    if n == 0:
        raise ValueError("no examples to compare")
    rng = np.random.default_rng(seed)
    means = np.concatenate([d[rng.integers(0, n, size=(rows, n))].mean(axis=1) for rows in _chunks(resamples, n)])
    low, high = _percentiles(means, confidence)
    return float(d.mean()), low, high


def _matrix(stats: Sequence[Sequence[float]]) -> np.ndarray:
    import numpy as np

    m = np.asarray(stats, dtype=float)
    if m.ndim != 2:
        raise ValueError("per-example statistics must be rows of numbers, one row per example")
    return m


def _stats_pair(stats_a: Sequence[Sequence[float]],
                stats_b: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    a, b = _matrix(stats_a), _matrix(stats_b)
    if a.shape != b.shape:
        raise ValueError(f"paired statistics need the same shape: {a.shape} against {b.shape}")
    if len(a) == 0:
        raise ValueError("no examples to compare")
    return a, b


def _deltas(sums_a: np.ndarray, sums_b: np.ndarray, from_a: FromStats, from_b: FromStats) -> list[float]:
    """from_a(row) - from_b(row) for every replicate's column sums (Python lists: from_stats is user code)."""
    return [from_a(x) - from_b(y) for x, y in zip(sums_a.tolist(), sums_b.tolist())]


def bootstrap_corpus_diff(stats_a: Sequence[Sequence[float]], stats_b: Sequence[Sequence[float]], from_a: FromStats,
                          from_b: FromStats, resamples: int = RESAMPLES, seed: int = 0,
                          confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(delta, low, high) of a corpus metric: delta = from_a(column sums of a) - from_b(column sums of b).

    Each replicate draws n example indices once and sums those rows of both candidates: the draws
    become a replicates x n counts matrix (bincount), and the sums one matrix product per chunk."""
    import numpy as np

    a, b = _stats_pair(stats_a, stats_b)
    n = len(a)
    delta = from_a(a.sum(axis=0).tolist()) - from_b(b.sum(axis=0).tolist())
    rng, deltas = np.random.default_rng(seed), []
    for rows in _chunks(resamples, n):
        picks = rng.integers(0, n, size=(rows, n)) + (np.arange(rows) * n)[:, None]
        counts = np.bincount(picks.ravel(), minlength=rows * n).reshape(rows, n).astype(float)
        deltas += _deltas(counts @ a, counts @ b, from_a, from_b)
    low, high = _percentiles(np.asarray(deltas, dtype=float), confidence)
    return float(delta), low, high


def approximate_randomisation(stats_a: Sequence[Sequence[float]], stats_b: Sequence[Sequence[float]],
                              from_a: FromStats, from_b: FromStats, resamples: int = RESAMPLES,
                              seed: int = 0) -> float:
    """Two-sided p-value of a corpus metric's difference: under "no difference" the candidates' rows of
    an example are exchangeable, so each replicate swaps every example's rows with probability 1/2.
    p = (count of |delta*| >= |delta| + 1) / (resamples + 1), sacrebleu's paired AR convention."""
    import numpy as np

    a, b = _stats_pair(stats_a, stats_b)
    n = len(a)
    total_a, total_b, gap = a.sum(axis=0), b.sum(axis=0), b - a
    observed = abs(from_a(total_a.tolist()) - from_b(total_b.tolist()))
    rng, extreme = np.random.default_rng(seed), 0
    for rows in _chunks(resamples, n):
        moved = (rng.random((rows, n)) < 0.5).astype(float) @ gap  # what the swapped rows move from b to a
        deltas = np.abs(np.asarray(_deltas(total_a + moved, total_b - moved, from_a, from_b), dtype=float))
        extreme += int(np.count_nonzero(deltas >= observed - _rtol(observed)))
    return (extreme + 1) / (resamples + 1)


def win_tie_loss(a: Sequence[float], b: Sequence[float]) -> tuple[int, int, int]:
    """How many examples ``a`` scores higher than / equal to / lower than ``b``."""
    _check_pair(a, b)
    wins = sum(1 for x, y in zip(a, b) if x > y)
    losses = sum(1 for x, y in zip(a, b) if x < y)
    return wins, len(a) - wins - losses, losses
