"""ftp.eval.paired against scipy on fixed data, and on cases whose answer follows by hand."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from scipy import stats

from ftp.eval import paired
from ftp.eval.paired import (approximate_randomisation, bootstrap_corpus_diff, bootstrap_mean_diff, mcnemar,
                             sign_flip, win_tie_loss)


def discordant(only_a: int, only_b: int, both: int = 5, neither: int = 3) -> tuple[list[float], list[float]]:
    """0/1 scores with ``only_a`` examples a gets right and b wrong, ``only_b`` the reverse."""
    a = [1.0] * only_a + [0.0] * only_b + [1.0] * both + [0.0] * neither
    b = [0.0] * only_a + [1.0] * only_b + [1.0] * both + [0.0] * neither
    return a, b


def ratio(s: Sequence[float]) -> float:
    """A corpus metric from column sums: matches / total (micro accuracy, a precision)."""
    return s[0] / s[1] if s[1] else 0.0


# --- McNemar ---


def test_mcnemar_is_the_exact_binomial_test_of_the_discordant_pairs_below_25() -> None:
    p, test = mcnemar(*discordant(7, 2))
    assert test == "mcnemar_exact"
    assert p == pytest.approx(stats.binomtest(7, 9, 0.5).pvalue)
    assert p == pytest.approx(2 * (36 + 9 + 1) / 2 ** 9)  # 2 P(X >= 7), X ~ Bin(9, 1/2)
    assert mcnemar(*discordant(2, 7))[0] == pytest.approx(p)  # two-sided: symmetric in a and b
    assert mcnemar(*discordant(12, 12))[1] == "mcnemar_exact"  # 24 discordant pairs: still exact


def test_mcnemar_uses_the_continuity_corrected_chi_square_from_25_discordant_pairs() -> None:
    p, test = mcnemar(*discordant(20, 8))
    assert test == "mcnemar_chi2"
    assert p == pytest.approx(stats.chi2.sf((abs(20 - 8) - 1) ** 2 / 28, df=1), rel=1e-12)
    p, test = mcnemar(*discordant(13, 12))
    assert test == "mcnemar_chi2" and p == pytest.approx(stats.chi2.sf(0.0, df=1)) == 1.0  # |b-c| - 1 = 0


def test_mcnemar_edge_cases() -> None:
    assert mcnemar([1.0, 0.0, 1.0], [1.0, 0.0, 1.0]) == (1.0, "mcnemar_exact")  # all ties: no discordant pair
    assert mcnemar([1.0], [0.0]) == (pytest.approx(1.0), "mcnemar_exact")  # one discordant pair proves nothing
    with pytest.raises(ValueError, match="0/1"):
        mcnemar([0.5, 1.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="same examples"):
        mcnemar([1.0], [1.0, 0.0])


# --- sign flip ---


def mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> Any:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def test_sign_flip_matches_an_exact_enumeration_and_scipy_on_a_small_sample() -> None:
    a = np.array([0.9, 0.7, 0.8, 0.4, 0.95, 0.6, 0.5, 0.75, 0.3, 0.85])
    b = np.array([0.6, 0.75, 0.5, 0.45, 0.7, 0.55, 0.52, 0.5, 0.35, 0.6])
    d = a - b
    observed = abs(d.mean())
    flips = [abs(np.mean(d * signs)) for signs in itertools.product([1, -1], repeat=len(d))]
    exact = sum(f >= observed - 1e-12 for f in flips) / len(flips)  # all 1,024 sign patterns
    scipy_p = stats.permutation_test((a, b), mean_diff, permutation_type="samples", vectorized=True,
                                     n_resamples=10_000, rng=0).pvalue  # 2^10 <= 10,000: scipy enumerates
    assert scipy_p == pytest.approx(exact)
    p = sign_flip(d.tolist(), resamples=20_000, seed=1)
    assert abs(p - exact) < 4 * math.sqrt(exact * (1 - exact) / 20_000) + 1e-4


def test_sign_flip_agrees_with_scipys_randomised_test_on_a_larger_sample() -> None:
    rng = np.random.default_rng(7)
    a = rng.normal(0.1, 1.0, 60)
    b = a + rng.normal(-0.1, 1.0, 60)  # paired, a slightly better
    scipy_p = stats.permutation_test((a, b), mean_diff, permutation_type="samples", vectorized=True,
                                     n_resamples=10_000, rng=3).pvalue
    p = sign_flip((a - b).tolist(), resamples=10_000, seed=3)
    assert 0.05 < p < 0.2  # the data make a moderate p, where agreement means something
    assert abs(p - scipy_p) < 0.015


def test_sign_flip_edge_cases_and_determinism() -> None:
    assert sign_flip([0.0] * 50, resamples=1000) == 1.0  # all ties: every flip is as extreme
    assert sign_flip([0.4], resamples=1000) == 1.0  # one example: flipping it keeps |mean|
    assert sign_flip([], resamples=1000) == 1.0
    assert sign_flip([1.0] * 30, resamples=999) == 1 / 1000  # only the two all-same patterns are as extreme
    d = [0.3, -0.1, 0.2, 0.5, 0.0, 0.1, -0.2, 0.4]
    assert sign_flip(d, 2000, seed=5) == sign_flip(d, 2000, seed=5)


# --- paired bootstrap of a mean ---


def test_bootstrap_mean_diff_matches_scipys_paired_percentile_bootstrap() -> None:
    rng = np.random.default_rng(11)
    b = (rng.random(300) < 0.45).astype(float)
    a = np.where(rng.random(300) < 0.2, 1.0, b)  # b's answers, and right on 20% more
    ref = stats.bootstrap((a, b), mean_diff, paired=True, vectorized=True, method="percentile",
                          n_resamples=20_000, confidence_level=0.95, rng=0).confidence_interval
    delta, low, high = bootstrap_mean_diff(a.tolist(), b.tolist(), resamples=20_000, seed=0, confidence=0.95)
    assert delta == pytest.approx(float(np.mean(a - b)))
    assert low == pytest.approx(ref.low, abs=0.006) and high == pytest.approx(ref.high, abs=0.006)
    _, low90, high90 = bootstrap_mean_diff(a.tolist(), b.tolist(), resamples=20_000, seed=0, confidence=0.90)
    assert low < low90 < delta < high90 < high  # a lower confidence gives a narrower interval


def test_bootstrap_mean_diff_edge_cases_and_determinism() -> None:
    assert bootstrap_mean_diff([1.0] * 20, [0.0] * 20, 1000) == (1.0, 1.0, 1.0)
    assert bootstrap_mean_diff([0.5] * 20, [0.5] * 20, 1000) == (0.0, 0.0, 0.0)  # all ties
    assert bootstrap_mean_diff([0.7], [0.2], 1000) == pytest.approx((0.5, 0.5, 0.5))  # n=1
    a, b = np.random.default_rng(1).random((2, 30)).tolist()
    assert bootstrap_mean_diff(a, b, 1000, seed=4) == bootstrap_mean_diff(a, b, 1000, seed=4)
    assert bootstrap_mean_diff(a, b, 1000, seed=4) != bootstrap_mean_diff(a, b, 1000, seed=5)
    with pytest.raises(ValueError):
        bootstrap_mean_diff([], [], 1000)


def test_chunking_does_not_change_the_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks only bound memory: the generator's stream is consumed in the same order."""
    rng = np.random.default_rng(2)
    a, b = rng.random(50).tolist(), rng.random(50).tolist()
    rows_a, rows_b = [[x, 1.0] for x in a], [[x, 1.0] for x in b]
    whole = (bootstrap_mean_diff(a, b, 500, 1), sign_flip([x - y for x, y in zip(a, b)], 500, 1),
             bootstrap_corpus_diff(rows_a, rows_b, ratio, ratio, 500, 1),
             approximate_randomisation(rows_a, rows_b, ratio, ratio, 500, 1))
    monkeypatch.setattr(paired, "CHUNK_CELLS", 50 * 7)  # 7 replicates a chunk, the last one short
    chunked = (bootstrap_mean_diff(a, b, 500, 1), sign_flip([x - y for x, y in zip(a, b)], 500, 1),
               bootstrap_corpus_diff(rows_a, rows_b, ratio, ratio, 500, 1),
               approximate_randomisation(rows_a, rows_b, ratio, ratio, 500, 1))
    for got, want in zip(chunked, whole):
        assert got == pytest.approx(want, abs=1e-12)


# --- corpus metrics ---


def test_a_ratio_of_sums_with_unit_denominators_is_the_mean_and_bootstraps_like_it() -> None:
    """Rows [score, 1]: sum(score)/n is the mean, and the corpus bootstrap draws the same indices."""
    rng = np.random.default_rng(5)
    a, b = rng.random(80).tolist(), rng.random(80).tolist()
    corpus = bootstrap_corpus_diff([[x, 1.0] for x in a], [[y, 1.0] for y in b], ratio, ratio, 2000, seed=9)
    assert corpus == pytest.approx(bootstrap_mean_diff(a, b, 2000, seed=9), abs=1e-12)


def test_a_constant_ratio_per_row_has_no_sampling_spread() -> None:
    """Every row of a scores 1/2 and of b 1/4: any resample of rows keeps each ratio of sums."""
    a = [[1.0, 2.0], [3.0, 6.0], [2.0, 4.0], [5.0, 10.0]]
    b = [[1.0, 4.0], [2.0, 8.0], [3.0, 12.0], [1.0, 4.0]]
    assert bootstrap_corpus_diff(a, b, ratio, ratio, 1000) == pytest.approx((0.25, 0.25, 0.25))
    assert bootstrap_corpus_diff(a, a, ratio, ratio, 1000) == (0.0, 0.0, 0.0)  # all ties
    assert bootstrap_corpus_diff([[3.0, 4.0]], [[1.0, 4.0]], ratio, ratio, 1000) == pytest.approx((0.5, 0.5, 0.5))


def corpus_data(n: int = 120, seed: int = 13, rate_b: float = 0.55) -> tuple[np.ndarray, np.ndarray]:
    """Rows [matches, total] of two systems on the same examples (total shared: the reference's length)."""
    rng = np.random.default_rng(seed)
    total = rng.integers(3, 30, n).astype(float)
    a = np.stack([rng.binomial(total.astype(int), 0.62), total], axis=1).astype(float)
    b = np.stack([rng.binomial(total.astype(int), rate_b), total], axis=1).astype(float)
    return a, b


def test_bootstrap_corpus_diff_matches_scipys_bootstrap_of_example_indices() -> None:
    a, b = corpus_data()

    def delta_of(idx: np.ndarray, axis: int = -1) -> Any:
        picked = idx.astype(int)
        sa, sb = a[picked].sum(axis=-2), b[picked].sum(axis=-2)
        return sa[..., 0] / sa[..., 1] - sb[..., 0] / sb[..., 1]

    ref = stats.bootstrap((np.arange(len(a)),), delta_of, vectorized=True, method="percentile",
                          n_resamples=20_000, rng=0).confidence_interval
    delta, low, high = bootstrap_corpus_diff(a.tolist(), b.tolist(), ratio, ratio, 20_000, seed=0)
    assert delta == pytest.approx(ratio(a.sum(0)) - ratio(b.sum(0)))
    assert low == pytest.approx(ref.low, abs=0.004) and high == pytest.approx(ref.high, abs=0.004)


def test_approximate_randomisation_matches_scipys_paired_permutation_of_rows() -> None:
    a, b = corpus_data(n=40, seed=21, rate_b=0.6)
    both = np.concatenate([a, b])  # index i is a's row i, index n + i is b's row i

    def delta_of(x: np.ndarray, y: np.ndarray, axis: int = -1) -> Any:
        sa, sb = both[x.astype(int)].sum(axis=-2), both[y.astype(int)].sum(axis=-2)
        return sa[..., 0] / sa[..., 1] - sb[..., 0] / sb[..., 1]

    n = len(a)
    scipy_p = stats.permutation_test((np.arange(n), np.arange(n) + n), delta_of, permutation_type="samples",
                                     vectorized=True, n_resamples=10_000, rng=1).pvalue  # swaps within pairs
    p = approximate_randomisation(a.tolist(), b.tolist(), ratio, ratio, 10_000, seed=1)
    assert 0.02 < p < 0.1 and abs(p - scipy_p) < 0.01


def test_approximate_randomisation_edge_cases_and_determinism() -> None:
    a = [[1.0, 1.0]] * 40
    b = [[0.0, 1.0]] * 40
    assert approximate_randomisation(a, b, ratio, ratio, 999) == 1 / 1000  # only all-or-none swaps reach 1
    assert approximate_randomisation(a, a, ratio, ratio, 999) == 1.0  # all ties
    assert approximate_randomisation([[1.0, 1.0]], [[0.0, 1.0]], ratio, ratio, 999) == 1.0  # n=1
    x, y = corpus_data(n=30)
    assert approximate_randomisation(x.tolist(), y.tolist(), ratio, ratio, 500, seed=2) == \
        approximate_randomisation(x.tolist(), y.tolist(), ratio, ratio, 500, seed=2)
    with pytest.raises(ValueError, match="same shape"):
        approximate_randomisation([[1.0, 2.0]], [[1.0, 2.0, 3.0]], ratio, ratio, 100)


# --- win / tie / loss, speed ---


def test_win_tie_loss_counts_examples() -> None:
    assert win_tie_loss([1.0, 0.5, 0.0, 0.2], [0.0, 0.5, 1.0, 0.1]) == (2, 1, 1)
    assert win_tie_loss([0.3] * 5, [0.3] * 5) == (0, 5, 0)
    assert win_tie_loss([], []) == (0, 0, 0)


def test_ten_thousand_resamples_are_fast() -> None:
    rng = np.random.default_rng(0)
    a, b = (rng.random(1000) < 0.6).astype(float).tolist(), (rng.random(1000) < 0.5).astype(float).tolist()
    started = time.perf_counter()
    bootstrap_mean_diff(a, b, 10_000, 0)
    sign_flip([x - y for x, y in zip(a, b)], 10_000, 0)
    mean_seconds = time.perf_counter() - started
    rows_a, rows_b = (rng.integers(0, 9, (120, 10)).astype(float).tolist() for _ in range(2))

    def python_metric(s: Sequence[float]) -> float:
        return sum(s[0::2]) / max(sum(s[1::2]), 1.0)

    started = time.perf_counter()
    bootstrap_corpus_diff(rows_a, rows_b, python_metric, python_metric, 10_000, 0)
    approximate_randomisation(rows_a, rows_b, python_metric, python_metric, 10_000, 0)
    corpus_seconds = time.perf_counter() - started
    assert mean_seconds < 1.0 and corpus_seconds < 1.0, (mean_seconds, corpus_seconds)
