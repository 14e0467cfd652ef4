"""ftp.monitor.drift: every statistic against values worked out by hand (and against scipy when the
``eval`` extra is installed), the verdicts and their edge cases, and the default thresholds' measured
false-positive rate and power.

The measurement (``python tests/test_monitor_drift.py`` prints every cell, n=50, smaller shifts and
Azure ML's defaults included; ~30 s). 1,000 seeded windows per cell, each drawn afresh from the
distribution the reference was drawn from and judged against one of 10 reference draws (so no one
draw's luck decides); references of 500 and 5,000 values. Shapes: ``normal`` (mean 100, sd 15),
``lengths`` (prompt lengths in characters: a rounded log-normal around 300, skewed, ties), ``narrow``
(a narrow task's lengths: 30 + a negative binomial, mean 36, ~25 distinct values: heavy ties) and
``labels`` (5 labels with shares .40/.25/.15/.12/.08). Windows flagged as drift at the default
thresholds, worst of the shapes and of the two reference sizes:

    n=200, same distribution: psi 0.2%, wasserstein 0.1%, ks 0.5%, jensen_shannon 0.1%, chi_square 0.4%
    n=200, lengths x1.5: psi, wasserstein and ks 100% on every shape
    n=200, the .25 label doubled (.25 -> .50): jensen_shannon 99.2%, chi_square 99.6%
    n=200, smaller shifts, for scale: the .15 label doubled: jensen_shannon 67-76%, chi_square 89-96%;
        the .08 label doubled: jensen_shannon 16-26%, chi_square 42-67%; lengths x1.1: 99-100% on
        normal and narrow, but on the wide log-normal psi 0.2-0.6%, wasserstein 13%, ks 12-28%
    n=50, same distribution: psi 29-37%, wasserstein 4-7%, jensen_shannon 20-23%, hence min_samples
        200; ks (0.1-0.7%) and chi_square (0.2-0.4%) keep their alpha at any n, losing power instead

Azure ML's defaults on the same n=200 windows: wasserstein 0.1 fires on 30-49% of them (a window's own
noise is 0.1-0.2 sd at n=200), jensen_shannon 0.1 on 3.4% (5,000 references) to 8.1% (500), ks and
chi_square at p < 0.01 on 0.3-0.8% (up to 2.8% against one unlucky 500-row reference; 0.005 leaves
room). A JS distance threshold also depends on the number of categories: with 20 labels, 0.15 fires on
29% (5,000) to 64% (500) of same-distribution windows at n=200, where chi_square stays at 0.1-0.6%.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from ftp.errors import UserError
from ftp.monitor import drift
from ftp.monitor.drift import (DEFAULT_THRESHOLDS, DriftResult, categorical_drift, chi2_sf, chi_square_test,
                               jensen_shannon_distance, kolmogorov_sf, ks_test, normalized_wasserstein_distance,
                               numeric_drift, population_stability_index, psi_band)

try:
    from scipy import stats
    from scipy.spatial import distance as scipy_distance
except ImportError:  # the eval extra is optional; the hand-computed cases still run
    stats = None
    scipy_distance = None
needs_scipy = pytest.mark.skipif(stats is None, reason="scipy (the eval extra) is not installed")


# --- PSI -------------------------------------------------------------------------------------------

def test_psi_two_bins_by_hand() -> None:
    # bins=2: the one edge is the reference's median, 2.5. Reference shares (.5, .5); current [1,1,1,4]
    # has 3 of 4 at or below 2.5: (.75, .25). PSI = (.75-.5) ln(.75/.5) + (.25-.5) ln(.25/.5)
    # = .25 ln 1.5 + .25 ln 2 = .25 ln 3.
    assert population_stability_index([1, 2, 3, 4], [1, 1, 1, 4], bins=2) == pytest.approx(0.25 * math.log(3), abs=1e-12)
    assert population_stability_index([1, 2, 3, 4], [4, 3, 2, 1], bins=2) == 0.0


def test_psi_floors_an_empty_bin_at_eps() -> None:
    # current [1,1,1,1] leaves the upper bin empty: (1, 0) floored to (1, 1e-4), renormalised by 1.0001.
    c = np.array([1, 1e-4]) / 1.0001
    r = np.array([0.5, 0.5])
    expected = float(np.sum((c - r) * np.log(c / r)))
    assert population_stability_index([1, 2, 3, 4], [1, 1, 1, 1], bins=2) == pytest.approx(expected, abs=1e-12)
    assert math.isfinite(expected) and expected > 3


def test_psi_merges_tied_edges_and_keeps_open_ends() -> None:
    # 15 fives and 5 sixes: the deciles are 5 (x7), 5.25 is not one of them; 0.8 and 0.9 fall on 6.
    # Edges {5, 6}: bins (-inf, 5], (5, 6], (6, inf) with shares .75, .25, 0 (floored to 1e-4).
    reference = [5.0] * 15 + [6.0] * 5
    assert population_stability_index(reference, reference) == 0.0
    # all current values above 6 land in the open last bin: c = (1e-4, 1e-4, 1) / 1.0002.
    r = np.array([0.75, 0.25, 1e-4]) / 1.0001
    c = np.array([1e-4, 1e-4, 1]) / 1.0002
    assert population_stability_index(reference, [7.0] * 20) == pytest.approx(float(np.sum((c - r) * np.log(c / r))))
    assert population_stability_index(reference, [100.0] * 3) == population_stability_index(reference, [7.0] * 20)


def test_psi_bands() -> None:
    assert [psi_band(v) for v in (0.0, 0.099, 0.1, 0.25, 0.2501, 3.0)] == \
        ["none", "none", "moderate", "moderate", "significant", "significant"]


# --- Wasserstein -----------------------------------------------------------------------------------

def test_wasserstein_of_a_shift_is_the_shift_over_the_std() -> None:
    reference = [0.0, 1.0, 2.0, 3.0]  # population std sqrt(1.25)
    shifted = [v + 2 for v in reference]
    assert normalized_wasserstein_distance(reference, shifted) == pytest.approx(2 / math.sqrt(1.25), abs=1e-12)
    # constant samples: distance 0.5, std 0 floored at 0.001
    assert normalized_wasserstein_distance([4.0] * 30, [4.5] * 30) == pytest.approx(0.5 / 0.001)
    # [0, 1] against [0, 0, 1]: the CDFs differ by 2/3 - 1/2 = 1/6 on [0, 1); std .5, so 1/3
    assert normalized_wasserstein_distance([0, 1], [0, 0, 1]) == pytest.approx(1 / 3, abs=1e-12)
    assert normalized_wasserstein_distance(reference, reference[::-1]) == 0.0


@needs_scipy
def test_wasserstein_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        a, b = rng.normal(size=int(rng.integers(20, 300))), np.round(rng.normal(0.3, 2, size=int(rng.integers(1, 300))))
        assert normalized_wasserstein_distance(a, b) == pytest.approx(stats.wasserstein_distance(a, b) / a.std(), rel=1e-9)


# --- Jensen-Shannon --------------------------------------------------------------------------------

def test_jensen_shannon_by_hand() -> None:
    assert jensen_shannon_distance({"a": 1}, {"b": 1}) == 1.0  # disjoint
    assert jensen_shannon_distance(["a", "b", "b"], ["b", "a", "b"]) == 0.0  # identical shares
    assert jensen_shannon_distance({"a": 2, "b": 4}, {"a": 0.5, "b": 1.0}) == pytest.approx(0.0, abs=1e-12)
    # P = (a .5, b .5), Q = (a 1): M = (.75, .25). KL(P||M) = .5 log2(.5/.75) + .5 log2(.5/.25),
    # KL(Q||M) = log2(1/.75); the distance is sqrt((KL(P||M) + KL(Q||M)) / 2).
    kl_p = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
    kl_q = math.log2(1 / 0.75)
    assert jensen_shannon_distance(["a", "b"], ["a"]) == pytest.approx(math.sqrt((kl_p + kl_q) / 2), abs=1e-12)
    # a category missing on one side counts 0 there; counts and raw lists agree
    assert jensen_shannon_distance({"a": 1, "b": 1}, {"a": 2}) == jensen_shannon_distance(["a", "b"], ["a", "a"])
    assert jensen_shannon_distance(["a", None, "b"], ["a", "b"]) == 0.0  # None is missing, not a category


@needs_scipy
def test_jensen_shannon_matches_scipy() -> None:
    rng = np.random.default_rng(4)
    for _ in range(20):
        p, q = rng.integers(0, 30, 6).astype(float), rng.integers(0, 30, 6).astype(float)
        p[0] += 1
        q[1] += 1
        expected = scipy_distance.jensenshannon(p, q, base=2)
        got = jensen_shannon_distance({str(i): v for i, v in enumerate(p)}, {str(i): v for i, v in enumerate(q)})
        assert got == pytest.approx(expected, abs=1e-9)


# --- Kolmogorov-Smirnov ----------------------------------------------------------------------------

def test_ks_by_hand() -> None:
    # disjoint samples of 4 and 4: D = 1; only 2 of the C(8, 4) = 70 orderings are that far apart.
    statistic, p = ks_test([1, 2, 3, 4], [5, 6, 7, 8])
    assert statistic == 1.0 and p == pytest.approx(2 / 70, abs=1e-12)
    # [1,2,3,4] against [2.5, 5]: at 2 the CDFs are .5 and 0, at 4 they are 1 and .5: D = .5; its p is
    # the share of the C(6, 2) = 15 orderings of the two samples whose D is .5 or more, counted one by one.
    statistic, p = ks_test([1, 2, 3, 4], [2.5, 5])
    assert statistic == 0.5 and p == pytest.approx(_brute_force_ks_p(4, 2, 0.5), abs=1e-12)
    assert ks_test([1, 2, 3], [1, 2, 3]) == (0.0, 1.0)
    # Kolmogorov's distribution: its 95th percentile is 1.3581
    assert kolmogorov_sf(1.3581) == pytest.approx(0.05, abs=1e-4)


def _brute_force_ks_p(m: int, n: int, d: float) -> float:
    """P(D >= d) over all C(m+n, n) equally likely orderings of the two samples, by enumeration."""
    from itertools import combinations

    hits = total = 0
    for places in combinations(range(m + n), n):
        ref = [i for i in range(m + n) if i not in places]
        hits += ks_test(ref, list(places))[0] >= d - 1e-12
        total += 1
    return hits / total


@needs_scipy
def test_ks_matches_scipy() -> None:
    rng = np.random.default_rng(5)
    for m, n in ((20, 20), (30, 50), (100, 200), (500, 200), (5000, 200)):
        for shift in np.linspace(0, 0.8, 9):
            a, b = rng.normal(size=m), rng.normal(shift, size=n)
            statistic, p = ks_test(a, b)
            exact = stats.ks_2samp(a, b, method="exact")
            assert statistic == pytest.approx(exact.statistic, abs=1e-12)
            if m * n <= drift.KS_EXACT_CELLS and p >= drift.KS_FAR_TAIL:
                assert p == pytest.approx(exact.pvalue, rel=1e-8, abs=1e-12)
            elif 1e-4 < exact.pvalue < 0.2:  # Kolmogorov's limit, up to 5% low at these sizes
                assert 0.94 * exact.pvalue <= p <= 1.01 * exact.pvalue


# --- chi-squared -----------------------------------------------------------------------------------

def test_chi_square_by_hand() -> None:
    # reference a:30 b:20, current a:10 b:30. Rows 50, 40; columns 40, 50; N 90. Expected
    # 50*40/90 = 22.2, 50*50/90 = 27.8, 40*40/90 = 17.8, 40*50/90 = 22.2; every cell is 70/9 off, so
    # X^2 = (70/9)^2 (9/500 + 9/2500 ... ) = (70/9)^2 * (90/2000 + 90/2500 + 90/1600 + 90/2000) = 11.025.
    statistic, p = chi_square_test(["a"] * 30 + ["b"] * 20, {"a": 10, "b": 30})
    hand = (70 / 9) ** 2 * (90 / 2000 + 90 / 2500 + 90 / 1600 + 90 / 2000)
    assert statistic == pytest.approx(hand, abs=1e-9) and hand == pytest.approx(11.025)
    assert p == pytest.approx(math.erfc(math.sqrt(hand / 2)), rel=1e-12)  # 1 dof: P(Z^2 > x)
    assert chi_square_test({"a": 5}, {"a": 9}) == (0.0, 1.0)  # one category: nothing to compare


def test_chi2_tail_in_closed_form() -> None:
    assert chi2_sf(3.841458820694124, 1) == pytest.approx(0.05, rel=1e-9)
    assert chi2_sf(9.487729036781154, 4) == pytest.approx(0.05, rel=1e-9)
    assert chi2_sf(7.0, 2) == pytest.approx(math.exp(-3.5), rel=1e-12)  # 2 dof is the exponential
    assert chi2_sf(0.0, 3) == 1.0


@needs_scipy
def test_chi_square_matches_scipy() -> None:
    for dof in (1, 2, 3, 4, 7, 19, 60):
        for x in (0.1, 1.0, dof * 1.0, dof + 10.0, 5.0 * dof + 30):
            assert chi2_sf(x, dof) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-9, abs=1e-300)
    table = [[30, 5, 12, 0], [10, 7, 3, 2]]
    statistic, p, _, _ = stats.chi2_contingency(table, correction=False)
    got = chi_square_test(dict(zip("abcd", table[0])), dict(zip("abcd", table[1])))
    assert got == pytest.approx((statistic, p), rel=1e-9)


# --- verdicts --------------------------------------------------------------------------------------

def test_a_verdict_carries_what_it_was_judged_by() -> None:
    rng = np.random.default_rng(6)
    reference, current = rng.normal(size=500), rng.normal(size=300) + 3
    result = numeric_drift("prompt_chars", reference, current, window="2026-12-01T12:00:00Z")
    assert result.verdict == "drift" and result.drifted and result.band == "significant"
    assert (result.metric, result.threshold, result.n_current, result.n_reference) == \
        ("population_stability_index", 0.25, 300, 500)
    assert json.loads(json.dumps(result.as_json())) == {
        "feature": "prompt_chars", "metric": "population_stability_index", "value": result.value, "threshold": 0.25,
        "verdict": "drift", "n_current": 300, "n_reference": 500, "window": "2026-12-01T12:00:00Z",
        "band": "significant"}
    same = numeric_drift("prompt_chars", reference, rng.normal(size=300))
    assert same.verdict == "no_drift" and not same.drifted and same.band == "none"
    # order does not matter and nothing is random: the same inputs give the same number
    assert numeric_drift("x", reference[::-1], current[::-1]) == numeric_drift("x", reference, current)


def test_each_method_and_threshold() -> None:
    reference, current = list(range(100)), [v + 30.0 for v in range(100)]  # D = .3, W = 30 / 28.9
    ks = numeric_drift("x", reference, current, method="ks", min_samples=50)
    assert ks.metric == "two_sample_kolmogorov_smirnov_test" and ks.value == ks_test(reference, current)[1]
    assert ks.value < 0.005 and ks.verdict == "drift" and ks.band is None
    assert numeric_drift("x", reference, current, method="ks", min_samples=50, threshold=ks.value).verdict == "no_drift"
    w = numeric_drift("x", reference, current, method="normalized_wasserstein_distance", min_samples=50)
    assert w.metric == "normalized_wasserstein_distance" and w.value == pytest.approx(30 / np.std(reference))
    assert w.verdict == "drift" and numeric_drift("x", reference, current, method="wasserstein", threshold=1.1,
                                                  min_samples=50).verdict == "no_drift"
    labels_ref, labels_cur = {"a": 100, "b": 100}, {"a": 150, "b": 50}
    js = categorical_drift("answer_label", labels_ref, labels_cur)
    assert (js.metric, js.threshold) == ("jensen_shannon_distance", 0.15)
    assert js.value == pytest.approx(jensen_shannon_distance(labels_ref, labels_cur)) and js.band is None
    p = chi_square_test(labels_ref, labels_cur)[1]  # expected 125 and 75 a row: X^2 = 2 x 25^2 (1/125 + 1/75) = 26.7
    chi = categorical_drift("answer_label", labels_ref, labels_cur, method="pearsons_chi_squared_test")
    assert (chi.metric, chi.value, chi.verdict) == ("pearsons_chi_squared_test", p, "drift")
    assert categorical_drift("answer_label", labels_ref, labels_cur, method="chi_square", threshold=p).verdict == "no_drift"


def test_too_little_data_is_insufficient_not_a_verdict() -> None:
    reference = list(np.random.default_rng(8).normal(size=500))
    few = numeric_drift("prompt_chars", reference, reference[:199])
    assert (few.verdict, few.value, few.n_current, few.drifted) == ("insufficient_data", None, 199, False)
    assert numeric_drift("prompt_chars", reference, reference[:200]).verdict == "no_drift"
    small_ref = numeric_drift("x", reference[:19], reference, min_samples=1)
    assert (small_ref.verdict, small_ref.n_reference) == ("insufficient_data", 19)
    for method in ("psi", "wasserstein", "ks"):
        empty = numeric_drift("x", [], [], method=method)
        assert (empty.verdict, empty.n_current, empty.n_reference) == ("insufficient_data", 0, 0)
        assert numeric_drift("x", reference, [], method=method, min_samples=0).verdict == "insufficient_data"
    for method in ("jensen_shannon", "chi_square"):
        assert categorical_drift("y", [], {}, method=method).verdict == "insufficient_data"
    # None and NaN are missing values, left out of n
    holes = numeric_drift("x", reference, [None, math.nan, *reference[:200]])
    assert holes.n_current == 200 and holes.verdict == "no_drift"
    assert categorical_drift("y", ["a"] * 30, ["a", None] * 10, min_samples=10).n_current == 10
    for f in (population_stability_index, normalized_wasserstein_distance):
        assert math.isnan(f([], [1.0]))
    assert all(math.isnan(v) for v in (*ks_test([1.0], []), *chi_square_test([], ["a"]), jensen_shannon_distance({}, {})))
    assert DriftResult("x", "m", math.nan, 1.0, "no_drift", 1, 1).as_json()["value"] is None


def test_unknown_methods_are_user_errors_naming_the_valid_ones() -> None:
    with pytest.raises(UserError, match=r"unknown numeric drift method 'wasserstien'; valid: psi, wasserstein, ks "
                                        r"\(did you mean 'wasserstein'\?\)"):
        numeric_drift("x", [1.0], [1.0], method="wasserstien")
    with pytest.raises(UserError, match=r"unknown categorical drift method 'psi'; valid: jensen_shannon, chi_square"):
        categorical_drift("y", ["a"], ["a"], method="psi")


# --- the default thresholds, measured (the table is in the module docstring) -----------------------

WINDOWS = 1000
REFERENCES = (500, 5000)
REFERENCE_DRAWS = 10  # each window is judged against one of 10 references, so no one reference's luck decides
SHARES = np.array([0.40, 0.25, 0.15, 0.12, 0.08])
LABELS = np.array(["billing", "bug", "account", "feature", "other"])
Draw = Callable[[np.random.Generator, int, float], np.ndarray]
SHAPES: dict[str, Draw] = {
    "normal": lambda rng, n, scale: rng.normal(100, 15, n) * scale,
    "lengths": lambda rng, n, scale: np.round(rng.lognormal(math.log(300), 0.5, n) * scale),
    "narrow": lambda rng, n, scale: np.round((30 + rng.negative_binomial(2, 0.25, n)) * scale),
}


def doubled(label: int) -> np.ndarray:
    """The label shares with one label's share doubled, the others scaled down to make room."""
    shares = SHARES.copy()
    shares[label] *= 2
    others = [i for i in range(len(SHARES)) if i != label]
    shares[others] *= (1 - shares[label]) / SHARES[others].sum()
    return shares


def numeric_rates(shape: str, n: int, scale: float, methods: tuple[str, ...] = drift.NUMERIC_METHODS,
                  threshold: float | None = None) -> dict[tuple[str, int], float]:
    """(method, reference size) -> share of WINDOWS windows of n values flagged as drift."""
    draw = SHAPES[shape]
    windows = [draw(np.random.default_rng([7, i]), n, scale) for i in range(WINDOWS)]
    out = {}
    for size in REFERENCES:
        references = [draw(np.random.default_rng([size, 1, k]), size, 1.0) for k in range(REFERENCE_DRAWS)]
        for method in methods:
            hits = sum(numeric_drift(shape, references[i % REFERENCE_DRAWS], w, method=method, min_samples=n,
                                     threshold=threshold).drifted for i, w in enumerate(windows))
            out[method, size] = hits / WINDOWS
    return out


def label_rates(n: int, shares: np.ndarray, methods: tuple[str, ...] = drift.CATEGORICAL_METHODS,
                threshold: float | None = None, base: np.ndarray = SHARES,
                seeds: range = range(REFERENCE_DRAWS)) -> dict[tuple[str, int], float]:
    """The same for labels: windows drawn with ``shares``, a reference per seed with ``base``."""
    labels = LABELS if len(base) == len(LABELS) else np.array([f"label{i}" for i in range(len(base))])
    windows = [Counter(np.random.default_rng([9, i]).choice(labels, n, p=shares).tolist()) for i in range(WINDOWS)]
    out = {}
    for size in REFERENCES:
        references = [Counter(np.random.default_rng([size, 2, k]).choice(labels, size, p=base).tolist())
                      for k in seeds]
        for method in methods:
            hits = sum(categorical_drift("answer_label", references[i % len(references)], w, method=method,
                                         min_samples=n, threshold=threshold).drifted for i, w in enumerate(windows))
            out[method, size] = hits / WINDOWS
    return out


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_numeric_defaults_rarely_fire_on_the_reference_and_always_on_lengths_x1_5(shape: str) -> None:
    same = numeric_rates(shape, 200, 1.0)
    assert max(same.values()) < 0.01, same
    shifted = numeric_rates(shape, 200, 1.5)
    assert min(shifted.values()) >= 0.95, shifted


def test_categorical_defaults_rarely_fire_on_the_reference_and_always_on_a_doubled_share() -> None:
    same = label_rates(200, SHARES)
    assert max(same.values()) < 0.01, same
    shifted = label_rates(200, doubled(1))  # "bug" .25 -> .50
    assert min(shifted.values()) >= 0.95, shifted


def test_the_thresholds_documented_are_the_defaults() -> None:
    assert DEFAULT_THRESHOLDS == {"psi": 0.25, "wasserstein": 0.3, "ks": 0.005, "jensen_shannon": 0.15,
                                  "chi_square": 0.005}


def table() -> list[dict[str, Any]]:
    """Every cell of the measurement in the module docstring, and Azure ML's defaults beside ours."""
    rows: list[dict[str, Any]] = []
    for n in (200, 50):
        for shape in SHAPES:
            for scale in (1.0, 1.1, 1.5):
                rows += [{"n": n, "case": f"{shape} x{scale}", "method": m, "reference": s, "rate": r}
                         for (m, s), r in numeric_rates(shape, n, scale).items()]
            for method, azure in (("wasserstein", 0.1), ("ks", 0.01)):  # Azure ML's defaults
                rows += [{"n": n, "case": f"{shape} x1.0", "method": f"{method}@{azure}", "reference": s, "rate": r}
                         for (_, s), r in numeric_rates(shape, n, 1.0, (method,), azure).items()]
        for case, shares in (("labels", SHARES), ("labels .25 doubled", doubled(1)), ("labels .15 doubled", doubled(2)),
                             ("labels .08 doubled", doubled(4))):
            rows += [{"n": n, "case": case, "method": m, "reference": s, "rate": r}
                     for (m, s), r in label_rates(n, shares).items()]
            for method, azure in (("jensen_shannon", 0.1), ("chi_square", 0.01)):
                rows += [{"n": n, "case": case, "method": f"{method}@{azure}", "reference": s, "rate": r}
                         for (_, s), r in label_rates(n, shares, (method,), azure).items()]
        for k in range(REFERENCE_DRAWS):  # each reference alone: what one deployment sees
            rows += [{"n": n, "case": f"labels, reference {k}", "method": f"{m}@0.01", "reference": s, "rate": r}
                     for (m, s), r in label_rates(n, SHARES, ("chi_square",), 0.01, seeds=range(k, k + 1)).items()]
        twenty = np.random.default_rng(3).dirichlet(np.full(20, 2.0))  # 20 labels, unequal shares
        rows += [{"n": n, "case": "20 labels", "method": m, "reference": s, "rate": r}
                 for (m, s), r in label_rates(n, twenty, base=twenty).items()]
    return rows


if __name__ == "__main__":
    for cell in table():
        print(f"n={cell['n']:<4} {cell['case']:<20} {cell['method']:<20} ref {cell['reference']:<5} {cell['rate']:.1%}")
