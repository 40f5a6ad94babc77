"""One column's values as a sorted sample or category counts, and the tests between two.

Each side is sorted (numbers) or counted (categories) once; every statistic, quantile,
range check and histogram then reads the sorted arrays with binary searches.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.spatial import distance

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

HISTOGRAM_BINS = 20
PSI_BINS = 10
_PSI_FLOOR = 1e-4  # a bin empty on one side would make PSI infinite


@dataclass(frozen=True, slots=True)
class Numbers:
    """The finite values of a numeric column, sorted, and how many rows had none."""

    values: Floats
    rows: int

    @property
    def missing(self) -> int:
        return self.rows - len(self.values)


@dataclass(frozen=True, slots=True)
class Counts:
    """The categories of a column (sorted, unique) with their counts."""

    categories: npt.NDArray[np.str_]
    counts: Ints
    rows: int

    @property
    def present(self) -> int:
        return int(self.counts.sum())

    @property
    def missing(self) -> int:
        return self.rows - self.present


def numbers(column: npt.NDArray[Any]) -> Numbers:
    """Sort once; NaN sorts last and the infinities sit at the ends, so the finite values
    are a slice found by two binary searches (missing = NaN or infinite)."""
    values = np.sort(np.asarray(column, dtype=np.float64))
    low = int(np.searchsorted(values, -np.inf, side="right"))
    high = int(np.searchsorted(values, np.inf, side="left"))
    return Numbers(values[low:high], len(values))


def counts_from_codes(categories: npt.NDArray[Any], codes: npt.NDArray[Any], rows: int) -> Counts:
    """Counts from dictionary codes (-1 for missing) and the dictionary."""
    codes = np.asarray(codes)
    tally = np.bincount(codes[codes >= 0], minlength=len(categories)).astype(np.int64)
    labels = np.asarray(categories, dtype=object).astype(str)
    used = tally > 0
    return _merge_duplicates(labels[used], tally[used], rows)


def counts(column: npt.NDArray[Any]) -> Counts:
    """Counts of an object column (None or NaN = missing) or a float one (NaN = missing)."""
    column = np.asarray(column)
    if column.dtype.kind == "f":
        present = column[np.isfinite(column)]
        labels = present.astype(str)
    else:
        column = column.astype(object, copy=False)
        # Elementwise: None, or NaN (the one value unequal to itself).
        missing = np.asarray(column == None, dtype=bool) | (column != column)  # noqa: E711
        labels = column[~missing].astype(str)
    unique, tally = np.unique(labels, return_counts=True)
    return Counts(unique, tally.astype(np.int64), len(column))


def _merge_duplicates(labels: npt.NDArray[Any], tally: Ints, rows: int) -> Counts:
    unique, inverse = np.unique(labels, return_inverse=True)
    merged = np.bincount(inverse.ravel(), weights=tally, minlength=len(unique)).astype(np.int64)
    return Counts(unique, merged, rows)


def aligned(ref: Counts, cur: Counts) -> tuple[npt.NDArray[np.str_], Ints, Ints]:
    """Both sides' counts over the union of their categories."""
    union = np.union1d(ref.categories, cur.categories)
    ref_counts = np.zeros(len(union), dtype=np.int64)
    cur_counts = np.zeros(len(union), dtype=np.int64)
    ref_counts[np.searchsorted(union, ref.categories)] = ref.counts
    cur_counts[np.searchsorted(union, cur.categories)] = cur.counts
    return union, ref_counts, cur_counts


# -- numeric tests -----------------------------------------------------------------------


def wasserstein(ref: Floats, cur: Floats) -> float:
    """Exact 1-Wasserstein distance of two sorted samples, as the integral of the gap
    between their quantile functions over the merged grid of steps ``i/n`` and ``j/m``."""
    n, m = len(ref), len(cur)
    if n == m:
        return float(np.abs(ref - cur).mean())
    # Steps on the common denominator n*m: integers, so a stable (radix) sort merges them.
    steps = np.concatenate(
        [np.arange(1, n + 1, dtype=np.int64) * m, np.arange(1, m + 1, dtype=np.int64) * n]
    )
    steps.sort(kind="stable")
    widths = np.diff(steps, prepend=0)
    ref_at = ref[(steps + m - 1) // m - 1]
    cur_at = cur[(steps + n - 1) // n - 1]
    return float(np.dot(widths, np.abs(ref_at - cur_at)) / (n * m))


def ks(ref: Floats, cur: Floats) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov: (D, p-value)."""
    with warnings.catch_warnings():
        # scipy warns when it falls back from the exact to the asymptotic p-value.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ks_2samp(ref, cur)
    return float(result.statistic), float(result.pvalue)


def quantiles(values: Floats, shares: Floats) -> Floats:
    """Linear-interpolated quantiles of a sorted sample (no re-sort)."""
    position = shares * (len(values) - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, len(values) - 1)
    fraction = position - low
    return values[low] * (1 - fraction) + values[high] * fraction


def bin_counts(values: Floats, inner_edges: Floats) -> Ints:
    """Counts of a sorted sample in the bins ``(-inf, e1], (e1, e2], ..., (ek, inf)``."""
    cuts = np.searchsorted(values, inner_edges, side="right")
    return np.diff(np.concatenate([[0], cuts, [len(values)]])).astype(np.int64)


def psi(ref_counts: Ints, cur_counts: Ints) -> float:
    """Population stability index of two count vectors over the same bins."""
    expected = np.maximum(ref_counts / max(ref_counts.sum(), 1), _PSI_FLOOR)
    actual = np.maximum(cur_counts / max(cur_counts.sum(), 1), _PSI_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def numeric_psi(ref: Floats, cur: Floats) -> float:
    """PSI over ten quantile bins of the reference."""
    edges = np.unique(quantiles(ref, np.arange(1, PSI_BINS) / PSI_BINS))
    return psi(bin_counts(ref, edges), bin_counts(cur, edges))


def numeric_histogram(ref: Floats, cur: Floats) -> dict[str, Any]:
    """At most 20 equal-width bins over the central 98 % of both samples."""
    tails = np.array([0.01, 0.99])
    low_ref, high_ref = quantiles(ref, tails)
    low_cur, high_cur = quantiles(cur, tails)
    low, high = min(low_ref, low_cur), max(high_ref, high_cur)
    if not low < high:
        low, high = min(ref[0], cur[0]), max(ref[-1], cur[-1])
    bins = HISTOGRAM_BINS if low < high else 1
    edges = np.linspace(low, high, bins + 1)
    inner = edges[1:-1]
    ref_share = bin_counts(ref, inner) / len(ref)
    cur_share = bin_counts(cur, inner) / len(cur)
    labels = [f"{a:.4g} to {b:.4g}" for a, b in itertools.pairwise(edges)]
    return {
        "bins": labels,
        "reference": [float(x) for x in ref_share],
        "current": [float(x) for x in cur_share],
        "edges": [float(x) for x in edges],
    }


# -- categorical tests -------------------------------------------------------------------


def chisquare(ref_counts: Ints, cur_counts: Ints) -> tuple[float, float]:
    """Pearson chi-square test of homogeneity on the 2 x k table: (statistic, p-value)."""
    table = np.vstack([ref_counts, cur_counts])
    if table.shape[1] < 2:
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def jensenshannon(ref_counts: Ints, cur_counts: Ints) -> float:
    """Jensen–Shannon distance (natural log) of the two proportion vectors."""
    value = float(distance.jensenshannon(ref_counts, cur_counts))
    return 0.0 if math.isnan(value) else value


def categorical_histogram(
    categories: npt.NDArray[np.str_], ref_counts: Ints, cur_counts: Ints
) -> dict[str, Any]:
    """The 19 most frequent categories (both sides together) and the rest as ``(other)``."""
    ref_share = ref_counts / max(ref_counts.sum(), 1)
    cur_share = cur_counts / max(cur_counts.sum(), 1)
    order = np.argsort(-(ref_share + cur_share), kind="stable")
    if len(order) > HISTOGRAM_BINS:
        top, rest = order[: HISTOGRAM_BINS - 1], order[HISTOGRAM_BINS - 1 :]
        bins = [*categories[top].tolist(), "(other)"]
        ref_out = [*ref_share[top].tolist(), float(ref_share[rest].sum())]
        cur_out = [*cur_share[top].tolist(), float(cur_share[rest].sum())]
    else:
        bins = categories[order].tolist()
        ref_out, cur_out = ref_share[order].tolist(), cur_share[order].tolist()
    return {"bins": bins, "reference": ref_out, "current": cur_out}
