"""Drift statistics: how far a window of live values is from the training data's (the reference).

Pure functions over plain sequences, so the monitor, a test or a notebook get the same numbers: PSI and
the normalised Wasserstein distance for numeric features, the Jensen-Shannon distance for categorical
ones, and the two-sample Kolmogorov-Smirnov and Pearson chi-squared tests for small references
(docs/monitoring.md). Metric ids are Azure ML's, so a result reads the same as its monitors'.

numpy is imported inside the functions (it is a core dependency, but ``ftp --help`` stays light);
scipy is not needed: the chi-squared tail is computed in closed form, the KS tail by counting lattice
paths (or Kolmogorov's series for large samples), all deterministic and the same with or without the
``eval`` extra. A window smaller than ``min_samples`` gets ``insufficient_data``, never a
verdict: below it the statistics' noise alone crosses the thresholds (measured in
tests/test_monitor_drift.py).
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Union

from ftp.config.check import suggest
from ftp.errors import UserError

if TYPE_CHECKING:
    import numpy as np

Categories = Union[Mapping[str, float], Sequence[str]]

# Default threshold per method: distances drift above it, tests when p is below it. Each is the one
# measured to fire on under 1% of 200-value windows drawn from the reference's own distribution (normal,
# skewed integer lengths with ties, narrow lengths with heavy ties; 5 labels .40/.25/.15/.12/.08;
# references of 500 and 5,000) while firing on >= 99% of windows with lengths x1.5 or the .25 label
# doubled. The table, n=50 and Azure ML's defaults included, is in tests/test_monitor_drift.py.
# - psi 0.25, the conventional "significant" band: same-distribution windows 0-0.2%. PSI of two samples
#   of one distribution is about (bins - 1) x (1/n_reference + 1/n_current): 0.1 fires on noise.
# - wasserstein 0.3: 0-0.1%. Azure ML's 0.1 fires on 30-49% at n=200: a window's own distance is
#   0.1-0.2 reference sd there (Azure's default suits windows of thousands).
# - jensen_shannon 0.15: 0-0.1%; Azure ML's 0.1 fires on 3-8%. JS distance^2 is about chi-squared(k-1)
#   x (1/n_reference + 1/n_current) / (8 ln 2), so it grows with the number of categories k: with 20
#   labels 0.15 fires on 29-64%. Use chi_square there.
# - ks, chi_square p < 0.005: 0.2-0.5%. A test's false-positive rate is its alpha (less with ties);
#   0.01 measured 0.3-0.8%, up to 2.8% against one unlucky 500-row reference.
DEFAULT_THRESHOLDS: dict[str, float] = {
    "psi": 0.25,
    "wasserstein": 0.3,
    "ks": 0.005,
    "jensen_shannon": 0.15,
    "chi_square": 0.005,
}
METRIC_IDS: dict[str, str] = {
    "psi": "population_stability_index",
    "wasserstein": "normalized_wasserstein_distance",
    "ks": "two_sample_kolmogorov_smirnov_test",
    "jensen_shannon": "jensen_shannon_distance",
    "chi_square": "pearsons_chi_squared_test",
}
NUMERIC_METHODS = ("psi", "wasserstein", "ks")
CATEGORICAL_METHODS = ("jensen_shannon", "chi_square")
TESTS = ("ks", "chi_square")  # judged on a p-value: drift when p < threshold
MIN_REFERENCE = 20  # a reference with fewer values is no distribution to compare with
STD_FLOOR = 0.001  # Azure ML's floor on the reference std, so a constant reference does not divide by 0


@dataclass(frozen=True)
class DriftResult:
    """One feature in one window against the reference, with what it was judged by."""

    feature: str
    metric: str
    value: float | None
    threshold: float
    verdict: str  # "drift" | "no_drift" | "insufficient_data"
    n_current: int
    n_reference: int
    window: str | None = None
    band: str | None = None  # PSI only

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        if out["value"] is not None and not math.isfinite(out["value"]):
            out["value"] = None
        return out

    @property
    def drifted(self) -> bool:
        return self.verdict == "drift"


def _numbers(values: Sequence[float]) -> np.ndarray:
    """The finite values as floats (None and NaN are missing values, not data)."""
    import numpy as np

    array = np.asarray(values, dtype=float).ravel()  # None becomes NaN
    return array[np.isfinite(array)]


def population_stability_index(reference: Sequence[float], current: Sequence[float], bins: int = 10,
                               eps: float = 1e-4) -> float:
    """PSI on quantile bins fixed from the reference alone, so the bins never follow the drift.

    Duplicate edges are merged (a length feature with ties has fewer bins, not empty ones), the first
    and last bins are open-ended, and every share is floored at ``eps`` and renormalised so a bin that
    one side lacks gives a large, finite term. NaN when either side is empty."""
    return _psi(_numbers(reference), _numbers(current), bins, eps)


def _psi(ref: np.ndarray, cur: np.ndarray, bins: int = 10, eps: float = 1e-4) -> float:
    import numpy as np

    if not ref.size or not cur.size:
        return math.nan
    edges = np.unique(np.quantile(ref, np.arange(1, bins) / bins))
    r, c = (_shares(np.searchsorted(edges, x, side="left"), edges.size + 1, eps) for x in (ref, cur))
    return float(np.sum((c - r) * np.log(c / r)))


def _shares(bin_index: np.ndarray, count: int, eps: float) -> np.ndarray:
    import numpy as np

    shares = np.bincount(bin_index, minlength=count) / bin_index.size
    shares = np.maximum(shares, eps)
    return shares / shares.sum()


def psi_band(value: float) -> str:
    """The conventional reading of a PSI: none (< 0.1), moderate (0.1-0.25), significant (> 0.25)."""
    return "none" if value < 0.1 else "moderate" if value <= 0.25 else "significant"


def _cdfs(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both empirical CDFs on the pooled sorted values (right-continuous), and the pooled values."""
    import numpy as np

    ref, cur = np.sort(ref), np.sort(cur)
    pooled = np.sort(np.concatenate([ref, cur]))
    return (np.searchsorted(ref, pooled, side="right") / ref.size,
            np.searchsorted(cur, pooled, side="right") / cur.size, pooled)


def normalized_wasserstein_distance(reference: Sequence[float], current: Sequence[float]) -> float:
    """The 1-D earth mover's distance, exact (the area between the two empirical CDFs), in units of
    the reference's standard deviation (floored at 0.001), so one threshold fits every feature's scale."""
    return _wasserstein(_numbers(reference), _numbers(current))


def _wasserstein(ref: np.ndarray, cur: np.ndarray) -> float:
    import numpy as np

    if not ref.size or not cur.size:
        return math.nan
    f_ref, f_cur, pooled = _cdfs(ref, cur)
    distance = float(np.sum(np.abs(f_ref - f_cur)[:-1] * np.diff(pooled)))
    return distance / max(float(np.std(ref)), STD_FLOOR)


def ks_test(reference: Sequence[float], current: Sequence[float]) -> tuple[float, float]:
    """Two-sample, two-sided Kolmogorov-Smirnov: (D, p). D is the largest gap between the empirical CDFs.
    p is exact (paths on the m x n lattice, as scipy's ``ks_2samp`` ``method="exact"``) up to
    ``KS_EXACT_CELLS``, which covers the small references KS is meant for; beyond that, and in the far
    tail (p < 1e-6), Kolmogorov's limit with Stephens' correction, which reads p up to 5% low at those
    sizes. Ties make both conservative.
    (NaN, NaN) when either side is empty."""
    return _ks(_numbers(reference), _numbers(current))


KS_EXACT_CELLS = 250_000  # m x n: about 1.5 ms for the exact p (200 current values against 1,250)
KS_FAR_TAIL = 1e-6  # below this the limit is returned: far past any threshold, where the exact p changes no verdict


def _ks(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float]:
    import numpy as np

    m, n = int(ref.size), int(cur.size)
    if not m or not n:
        return math.nan, math.nan
    ref, cur = np.sort(ref), np.sort(cur)
    pooled = np.concatenate([ref, cur])
    below_ref = np.searchsorted(ref, pooled, side="right").astype(np.int64)
    below_cur = np.searchsorted(cur, pooled, side="right").astype(np.int64)
    gap = int(np.max(np.abs(below_ref * n - below_cur * m)))  # D x m x n, an integer: no rounding
    statistic = gap / (m * n)
    en = math.sqrt(m * n / (m + n))
    limit = kolmogorov_sf((en + 0.12 + 0.11 / en) * statistic)
    if m * n > KS_EXACT_CELLS or limit < KS_FAR_TAIL:
        return statistic, limit
    return statistic, _ks_exact_sf(gap, m, n)


@functools.lru_cache(maxsize=4096)
def _ks_exact_sf(gap: int, m: int, n: int) -> float:
    """P(D >= gap / (m n)) when both samples come from one continuous distribution: 1 - the share of
    the C(m+n, m) monotone lattice paths that keep |i n - j m| < gap. A row of path counts per value of
    the smaller sample, rescaled as it goes (the counts overflow a float); cached, since a monitor asks
    the same sizes again and D takes few values."""
    import numpy as np

    if gap <= 0:
        return 1.0
    m, n = min(m, n), max(m, n)
    row = np.zeros(n + 1)
    row[0] = 1.0
    log_scale = 0.0
    for i in range(m + 1):
        lo, hi = max((i * n - gap) // m + 1, 0), min(-(-(i * n + gap) // m) - 1, n)
        new = np.zeros(n + 1)
        if lo <= hi:  # the cells of row i inside the band, reached from row i - 1 or from the left
            new[lo:hi + 1] = np.cumsum(row[lo:hi + 1])
        top = float(new.max())
        if top <= 0:
            return 1.0
        row, log_scale = new / top, log_scale + math.log(top)
    if row[n] <= 0:
        return 1.0
    log_paths = math.lgamma(m + n + 1) - math.lgamma(m + 1) - math.lgamma(n + 1)
    return min(max(1.0 - math.exp(log_scale + math.log(row[n]) - log_paths), 0.0), 1.0)


def kolmogorov_sf(x: float) -> float:
    """P(K > x) for Kolmogorov's distribution: 2 sum_k (-1)^(k-1) exp(-2 k^2 x^2), clipped to [0, 1]."""
    if x < 0.2:  # the series converges slowly here, and the tail is 1 to 15 digits
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = 2.0 * (-1) ** (k - 1) * math.exp(-2.0 * k * k * x * x)
        total += term
        if abs(term) < 1e-16:
            break
    return min(max(total, 0.0), 1.0)


def _counts(values: Categories) -> Counter[str]:
    """Category -> count from counts or a raw list (None is a missing value, not a category)."""
    if isinstance(values, str):
        raise TypeError("categories: pass a list of categories or a mapping of counts, not one string")
    if isinstance(values, Mapping):
        return Counter({str(k): float(v) for k, v in values.items() if v})
    return Counter(str(v) for v in values if v is not None)


def _aligned(reference: Categories, current: Categories) -> tuple[np.ndarray, np.ndarray]:
    """Both sides' counts over the union of categories (sorted, so sums are deterministic); missing is 0."""
    import numpy as np

    ref, cur = _counts(reference), _counts(current)
    keys = sorted(set(ref) | set(cur))
    return np.array([ref.get(k, 0.0) for k in keys], dtype=float), np.array([cur.get(k, 0.0) for k in keys], dtype=float)


def jensen_shannon_distance(reference: Categories, current: Categories) -> float:
    """sqrt of the base-2 Jensen-Shannon divergence of the two category distributions: 0 for the same
    shares, 1 for disjoint ones. NaN when either side is empty."""
    import numpy as np

    ref, cur = _aligned(reference, current)
    if ref.sum() <= 0 or cur.sum() <= 0:
        return math.nan
    p, q = ref / ref.sum(), cur / cur.sum()
    m = (p + q) / 2
    divergence = 0.5 * _kl_bits(p, m) + 0.5 * _kl_bits(q, m)
    return float(np.sqrt(min(max(divergence, 0.0), 1.0)))


def _kl_bits(p: np.ndarray, m: np.ndarray) -> float:
    import numpy as np

    seen = p > 0
    return float(np.sum(p[seen] * np.log2(p[seen] / m[seen])))


def chi_square_test(reference: Categories, current: Categories) -> tuple[float, float]:
    """Pearson's chi-squared test of homogeneity on the 2 x k table of counts (no continuity
    correction): (statistic, p) with k - 1 degrees of freedom. (NaN, NaN) when either side is empty."""
    import numpy as np

    ref, cur = _aligned(reference, current)
    if ref.sum() <= 0 or cur.sum() <= 0:
        return math.nan, math.nan
    table = np.vstack([ref, cur])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return statistic, chi2_sf(statistic, table.shape[1] - 1)


def chi2_sf(x: float, dof: int) -> float:
    """P(X > x) for chi-squared with integer ``dof``, in closed form (the regularised upper incomplete
    gamma at integer or half-integer order): no scipy, exact to float precision."""
    if dof < 1 or x <= 0:
        return 1.0
    half = x / 2.0
    if dof % 2 == 0:
        terms = [i * math.log(half) - math.lgamma(i + 1) for i in range(dof // 2)]
        base = 0.0
    else:
        terms = [(i - 0.5) * math.log(half) - math.lgamma(i + 0.5) for i in range(1, (dof + 1) // 2)]
        base = math.erfc(math.sqrt(half))
    return min(base + sum(math.exp(t - half) for t in terms), 1.0)


def _method(method: str, valid: Sequence[str], kind: str) -> str:
    """The short method name for a short name or an Azure metric id; a UserError naming the valid ones."""
    ids = {METRIC_IDS[m]: m for m in valid}
    if method in valid:
        return method
    if method in ids:
        return ids[method]
    hint = suggest(method, [*valid, *ids])
    raise UserError(f"unknown {kind} drift method {method!r}; valid: {', '.join(valid)}"
                    + (f" ({hint})" if hint else ""))


def _result(feature: str, method: str, value: float | None, threshold: float | None, n_current: int,
            n_reference: int, min_samples: int, window: str | None) -> DriftResult:
    """The verdict: insufficient below the minimum sizes, else the value against the threshold."""
    limit = DEFAULT_THRESHOLDS[method] if threshold is None else float(threshold)
    metric = METRIC_IDS[method]
    if n_current < max(min_samples, 1) or n_reference < MIN_REFERENCE or value is None or not math.isfinite(value):
        return DriftResult(feature, metric, None, limit, "insufficient_data", n_current, n_reference, window)
    crossed = value < limit if method in TESTS else value > limit
    band = psi_band(value) if method == "psi" else None
    return DriftResult(feature, metric, value, limit, "drift" if crossed else "no_drift", n_current, n_reference,
                       window, band)


def numeric_drift(feature: str, reference: Sequence[float], current: Sequence[float], *, method: str = "psi",
                  threshold: float | None = None, min_samples: int = 200, window: str | None = None) -> DriftResult:
    """A numeric feature's drift by ``psi`` (drift above 0.25), ``wasserstein`` (above 0.3) or ``ks``
    (p below 0.005), or their Azure metric ids; None and NaN values are left out of the counts."""
    name = _method(method, NUMERIC_METHODS, "numeric")
    ref, cur = _numbers(reference), _numbers(current)
    value: float | None = None
    if cur.size >= max(min_samples, 1) and ref.size >= MIN_REFERENCE:
        value = _psi(ref, cur) if name == "psi" else _wasserstein(ref, cur) if name == "wasserstein" else _ks(ref, cur)[1]
    return _result(feature, name, value, threshold, int(cur.size), int(ref.size), min_samples, window)


def categorical_drift(feature: str, reference: Categories, current: Categories, *, method: str = "jensen_shannon",
                      threshold: float | None = None, min_samples: int = 200, window: str | None = None) -> DriftResult:
    """A categorical feature's drift by ``jensen_shannon`` (distance above 0.15) or ``chi_square``
    (p below 0.005), or their Azure metric ids; counts or raw category lists, None left out."""
    name = _method(method, CATEGORICAL_METHODS, "categorical")
    n_ref, n_cur = int(sum(_counts(reference).values())), int(sum(_counts(current).values()))
    value: float | None = None
    if n_cur >= max(min_samples, 1) and n_ref >= MIN_REFERENCE:
        value = jensen_shannon_distance(reference, current) if name == "jensen_shannon" else \
            chi_square_test(reference, current)[1]
    return _result(feature, name, value, threshold, n_cur, n_ref, min_samples, window)
