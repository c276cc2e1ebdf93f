"""Per-column drift tests of a live window against the training reference, chosen as Evidently chooses them.

The rule, per column, when the method is ``auto``:

==========================================  =========================  ==============================
column                                      reference <= 1000 rows     reference > 1000 rows
==========================================  =========================  ==============================
numeric with more than 5 distinct values    two-sample KS, p < 0.05    Wasserstein / std(ref) >= 0.1
categorical, or numeric with <= 5 values    chi-square, p < 0.05       Jensen-Shannon distance >= 0.1
==========================================  =========================  ==============================

PSI (>= 0.1) is used only on request. A forced method applies to every column it can apply to; the
numeric-only methods (``ks``, ``wasserstein``) fall back to the ``auto`` choice on a text column.
A :class:`Reference` holds what the tests need from the training data (sorted values, standard
deviations, quantile bins, category counts), computed once and reused for every window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special, stats

from ..data import feature_type

Method = Literal["ks", "chi2", "wasserstein", "jensenshannon", "psi"]
METHODS: tuple[str, ...] = ("ks", "chi2", "wasserstein", "jensenshannon", "psi")
P_VALUE_METHODS = frozenset({"ks", "chi2"})  # drift when the p-value is BELOW the threshold
DEFAULT_THRESHOLDS: dict[str, float] = {"ks": 0.05, "chi2": 0.05, "wasserstein": 0.1, "jensenshannon": 0.1, "psi": 0.1}
SMALL_REFERENCE = 1000  # at most this many reference rows: statistical tests; above: distances
FEW_VALUES = 5  # a numeric column with at most this many distinct values is tested as categories
PREDICTION = "prediction"  # the name prediction drift is reported under

_STD_FLOOR = 1e-3  # a near-constant reference must not turn a tiny move into an enormous distance
_PSI_FLOOR = 1e-4  # an empty bin would make PSI infinite
_MAX_BINS = 30


def select_method(kind: str, n_unique: int, n_reference: int, method: str = "auto") -> str:
    """The test for one column: ``kind`` is ``numeric`` or ``categorical`` (see :func:`darkfab.data.feature_type`)."""
    continuous = kind == "numeric" and n_unique > FEW_VALUES
    if method != "auto" and (kind == "numeric" or method not in ("ks", "wasserstein")):
        return method
    small = n_reference <= SMALL_REFERENCE
    if continuous:
        return "ks" if small else "wasserstein"
    return "chi2" if small else "jensenshannon"


def _check_method(method: str) -> str:
    if method != "auto" and method not in METHODS:
        raise ValueError(f"the drift `method` must be one of {['auto', *METHODS]}, got {method!r}")
    return method


def is_drift(method: str, score: float, threshold: float) -> bool:
    if not math.isfinite(score):
        return False
    return score < threshold if method in P_VALUE_METHODS else score >= threshold


# -- the tests, on prepared inputs ----------------------------------------------------------------


_KS_EXACT_MAX = 10_000  # scipy's ks_2samp computes the exact p-value up to this sample size


def ks_pvalue(reference_sorted: np.ndarray, current: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov p-value, as scipy's ``ks_2samp`` (two-sided, method auto) gives it.

    Past 10,000 rows scipy uses Smirnov's asymptotic distribution; the statistic is then computed here
    from the sorted reference in O(m log n), without sorting the union.
    """
    n, m = len(reference_sorted), len(current)
    if max(n, m) <= _KS_EXACT_MAX:
        return float(stats.ks_2samp(reference_sorted, current).pvalue)
    d = ks_statistic(reference_sorted, np.sort(current))
    return float(np.clip(stats.kstwo.sf(d, np.round(n * m / (n + m))), 0.0, 1.0))


def ks_statistic(reference_sorted: np.ndarray, current_sorted: np.ndarray) -> float:
    """The largest gap between the two empirical CDFs.

    Between two consecutive distinct current values the current CDF is flat and the reference CDF rises,
    so the gap is largest at an end of the interval: at a current value, or just below the next one.
    """
    c = current_sorted
    if not len(c):
        return 0.0
    n, m = len(reference_sorted), len(c)
    ref_at = np.searchsorted(reference_sorted, c, side="right") / n  # F_ref(c_j)
    ref_before = np.searchsorted(reference_sorted, c, side="left") / n  # F_ref just below c_j
    cur_at = np.searchsorted(c, c, side="right") / m
    cur_before = np.searchsorted(c, c, side="left") / m
    return float(max(np.abs(ref_at - cur_at).max(), np.abs(ref_before - cur_before).max()))


def cdf_integral(reference_sorted: np.ndarray) -> np.ndarray:
    """G at each sorted reference value, where G(x) is the integral of the reference CDF up to x."""
    n = len(reference_sorted)
    steps = np.arange(1, n) / n * np.diff(reference_sorted)
    return np.concatenate([[0.0], np.cumsum(steps)])


def wasserstein(reference_sorted: np.ndarray, current: np.ndarray, integral: np.ndarray | None = None) -> float:
    """First Wasserstein distance: the area between the two empirical CDFs, in O(m log n).

    With G the integral of the reference CDF (precomputed once, :func:`cdf_integral`), the area over an
    interval [a, b) where the current CDF stays at level t is G(b) - G(a) - t(b - a), plus twice the part
    where the reference CDF lies below t; that part ends where the reference CDF first reaches t, at the
    reference value of rank ceil(t n). No merge of the two samples is needed.
    """
    r = reference_sorted
    g = cdf_integral(r) if integral is None else integral
    c = np.sort(current)
    n, m = len(r), len(c)

    def big_g(x: np.ndarray) -> np.ndarray:
        i = np.searchsorted(r, x, side="right")  # reference values <= x
        j = np.maximum(i - 1, 0)
        return np.where(i == 0, 0.0, g[j] + i / n * (x - r[j]))

    lo, hi = min(r[0], c[0]), max(r[-1], c[-1])
    edges = np.concatenate([[lo], c, [hi]])  # intervals [edges[j], edges[j+1]) at level j/m
    g_edges = big_g(edges)
    a, b, ga, gb = edges[:-1], edges[1:], g_edges[:-1], g_edges[1:]
    levels = np.arange(m + 1)
    t = levels / m
    rank = -((-levels * n) // m)  # ceil(t n), exact in integers
    s = np.where(rank == 0, -np.inf, r[np.maximum(rank - 1, 0)])
    gs = g[np.maximum(rank - 1, 0)]
    u = np.clip(s, a, b)
    gu = np.where(s <= a, ga, np.where(s >= b, gb, gs))
    total = (gb - ga) - t * (b - a) + 2.0 * (t * (u - a) - (gu - ga))
    return float(max(total.sum(), 0.0))


def chi2_pvalue(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Chi-square test of homogeneity of two samples over the same categories (2 x k table, no correction).

    A category seen only in the current window counts with zero reference rows; the test of two samples
    (rather than goodness of fit to the reference shares) needs no smoothing for it, and does not treat a
    small reference's shares as exact.
    """
    table = np.vstack([reference_counts, current_counts]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return float(stats.chi2.sf(statistic, table.shape[1] - 1))


def jensenshannon(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log, as scipy's ``jensenshannon``) between two count vectors."""
    p = reference_counts / reference_counts.sum()
    q = current_counts / current_counts.sum()
    m = (p + q) / 2.0
    divergence = float(special.rel_entr(p, m).sum() + special.rel_entr(q, m).sum()) / 2.0
    return math.sqrt(max(divergence, 0.0))


def psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Population stability index; empty bins count as a share of 0.0001."""
    p = np.maximum(reference_counts / reference_counts.sum(), _PSI_FLOOR)
    q = np.maximum(current_counts / current_counts.sum(), _PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


# -- records --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnDrift:
    """One column's test. ``statistic`` is what is compared with ``threshold``: the p-value for ``ks``
    and ``chi2`` (drift below it), the distance for ``wasserstein``, ``jensenshannon`` and ``psi``
    (drift at or above it). NaN when the window holds no value of the column."""

    column: str
    method: str
    statistic: float
    threshold: float
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        stat = self.statistic if math.isfinite(self.statistic) else None
        return {
            "column": self.column,
            "method": self.method,
            "statistic": stat,
            "threshold": self.threshold,
            "drifted": self.drifted,
        }

    def describe(self) -> str:
        op = "<" if self.method in P_VALUE_METHODS else ">="
        what = "p" if self.method in P_VALUE_METHODS else self.method
        return f"{self.column} ({what} {self.statistic:.4g} {op} {self.threshold:g})"


@dataclass(frozen=True)
class DriftReport:
    """Every column's test, the share that drifted, and whether that share means dataset drift."""

    columns: tuple[ColumnDrift, ...]
    share_drifted: float
    dataset_drift: bool
    prediction_drift: ColumnDrift | None
    drift_share: float = 0.5

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": [c.to_dict() for c in self.columns],
            "share_drifted": self.share_drifted,
            "drift_share": self.drift_share,
            "dataset_drift": self.dataset_drift,
            "prediction": None if self.prediction_drift is None else self.prediction_drift.to_dict(),
        }

    def describe(self) -> str:
        drifted = [c for c in self.columns if c.drifted]
        head = (
            f"{len(drifted)} of {len(self.columns)} features drifted (share {self.share_drifted:.2f}, "
            f"dataset drift at {self.drift_share:g})"
        )
        return head + (": " + ", ".join(c.describe() for c in drifted) if drifted else "")


# -- the reference --------------------------------------------------------------------------------


def _as_float(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(series):
        values = series.to_numpy(dtype="datetime64[ns]").astype("int64").astype(float)
        values[series.isna().to_numpy()] = np.nan
    elif pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        values = series.to_numpy(dtype=float, na_value=np.nan)
    else:
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return values[~np.isnan(values)]


def _as_text(series: pd.Series) -> np.ndarray:
    values = series.dropna()
    if pd.api.types.infer_dtype(values, skipna=False) != "string":
        values = values.astype(str)
    return values.to_numpy(dtype=object)


@dataclass
class _ColumnReference:
    """What one column's tests need from the reference. Bins are made on first use."""

    name: str
    kind: str  # numeric | categorical
    n: int  # non-missing reference values
    n_unique: int
    values: np.ndarray | None = None  # numeric: sorted floats
    std: float = 0.0
    integral: np.ndarray | None = None  # numeric: cdf_integral(values), for Wasserstein
    categories: pd.Index | None = None  # discrete columns: the distinct values
    counts: np.ndarray | None = None  # ... and how often each occurs
    _cuts: np.ndarray | None = field(default=None, repr=False)
    _bin_counts: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def build(cls, name: str, series: pd.Series, kind: str) -> _ColumnReference:
        if kind == "numeric":
            values = np.sort(_as_float(series))
            distinct = values[np.concatenate([[True], values[1:] != values[:-1]])] if len(values) else values
            col = cls(name, kind, len(values), len(distinct), values=values)
            if len(values):
                col.std = float(np.std(values))
                col.integral = cdf_integral(values)
            if len(distinct) <= FEW_VALUES:
                col.categories = pd.Index(distinct)
                col.counts = np.diff(np.searchsorted(values, distinct, side="left"), append=len(values))
            return col
        found = pd.Series(_as_text(series)).value_counts(sort=False)
        return cls(name, kind, int(found.sum()), len(found), categories=pd.Index(found.index), counts=found.to_numpy())

    def method(self, method: str) -> str:
        return select_method(self.kind, self.n_unique, self.n, method)

    def current(self, series: pd.Series) -> np.ndarray:
        return _as_float(series) if self.kind == "numeric" else _as_text(series)

    def bins(self) -> tuple[np.ndarray, np.ndarray]:
        """Interior cut points at the reference's quantiles (Sturges' count, at most 30 bins) and its counts."""
        if self._cuts is None:
            assert self.values is not None
            n_bins = min(_MAX_BINS, max(2, math.ceil(math.log2(max(self.n, 1)) + 1)))
            cuts = np.unique(np.quantile(self.values, np.linspace(0, 1, n_bins + 1)[1:-1])) if self.n else np.array([])
            self._cuts = cuts
            self._bin_counts = np.bincount(np.searchsorted(cuts, self.values, side="right"), minlength=len(cuts) + 1)
        assert self._bin_counts is not None
        return self._cuts, self._bin_counts

    def category_counts(self, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reference and current counts over the reference's categories, then each unseen one."""
        assert self.categories is not None and self.counts is not None
        codes = self.categories.get_indexer(current)
        known = np.bincount(codes[codes >= 0], minlength=len(self.categories))
        unseen = current[codes < 0]
        if len(unseen):
            extra = pd.Series(unseen).value_counts(sort=False).to_numpy()
            return np.concatenate([self.counts, np.zeros(len(extra), dtype=np.int64)]), np.concatenate([known, extra])
        return self.counts, known

    def counted(self, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.categories is not None:
            return self.category_counts(current)
        cuts, ref_counts = self.bins()
        return ref_counts, np.bincount(np.searchsorted(cuts, current, side="right"), minlength=len(cuts) + 1)

    def test(self, current: np.ndarray, method: str, threshold: float | None) -> ColumnDrift:
        chosen = self.method(method)
        limit = DEFAULT_THRESHOLDS[chosen] if threshold is None else float(threshold)
        if len(current) == 0 or self.n == 0:
            return ColumnDrift(self.name, chosen, float("nan"), limit, False)
        if chosen == "ks":
            assert self.values is not None
            score = ks_pvalue(self.values, current)
        elif chosen == "wasserstein":
            assert self.values is not None
            score = wasserstein(self.values, current, self.integral) / max(self.std, _STD_FLOOR)
        else:
            ref_counts, cur_counts = self.counted(current)
            test = {"chi2": chi2_pvalue, "jensenshannon": jensenshannon, "psi": psi}[chosen]
            score = test(ref_counts, cur_counts)
        return ColumnDrift(self.name, chosen, score, limit, is_drift(chosen, score, limit))


class Reference:
    """The training reference, summarised once: build it when the model is deployed, reuse it every window.

    Args:
        frame: the reference rows (the training features).
        feature_types: column -> ``numeric`` | ``categorical``; the columns tested. Every column of
            ``frame``, typed by :func:`darkfab.data.feature_type`, when absent.
        predictions: the model's predictions on ``frame`` (or any reference sample of them), for
            prediction drift.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        feature_types: Mapping[str, str] | None = None,
        *,
        predictions: Any = None,
    ) -> None:
        types = dict(feature_types) if feature_types is not None else {str(c): feature_type(frame[c]) for c in frame}
        missing = [c for c in types if c not in frame.columns]
        if missing:
            raise ValueError(f"the reference has no column(s) {missing}; its columns are {list(frame.columns)[:20]}")
        bad = {c: t for c, t in types.items() if t not in ("numeric", "categorical")}
        if bad:
            raise ValueError(f"feature types must be 'numeric' or 'categorical', got {bad}")
        self.rows = len(frame)
        self.columns: dict[str, _ColumnReference] = {
            c: _ColumnReference.build(c, frame[c], t) for c, t in types.items()
        }
        self.prediction: _ColumnReference | None = None
        if predictions is not None:
            self.set_predictions(predictions)

    def set_predictions(self, predictions: Any) -> None:
        series = _series(predictions)
        self.prediction = _ColumnReference.build(PREDICTION, series, feature_type(series))

    @property
    def feature_types(self) -> dict[str, str]:
        return {c: col.kind for c, col in self.columns.items()}

    def methods(self, method: str = "auto") -> dict[str, str]:
        """The test each column gets under ``method``."""
        _check_method(method)
        return {c: col.method(method) for c, col in self.columns.items()}

    def __repr__(self) -> str:
        return f"Reference({self.rows} rows, {len(self.columns)} columns, predictions={self.prediction is not None})"


def _series(values: Any) -> pd.Series:
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True)
    array = np.asarray(values)
    if array.dtype == object:
        kinds = {type(v) for v in array.tolist() if v is not None}
        if kinds and all(k in (int, float) for k in kinds):
            return pd.Series(array.astype(float))
    return pd.Series(array)


def detect_drift(
    reference: pd.DataFrame | Reference,
    current: pd.DataFrame,
    *,
    feature_types: Mapping[str, str] | None = None,
    method: str = "auto",
    threshold: float | None = None,
    drift_share: float = 0.5,
    reference_predictions: Any = None,
    current_predictions: Any = None,
) -> DriftReport:
    """Test each reference column of ``current`` against ``reference`` and decide dataset drift.

    Args:
        reference: the training rows, or a :class:`Reference` built from them (much faster when reused).
        current: the window of live rows; a column it lacks counts as a column with no values.
        feature_types: column -> ``numeric`` | ``categorical`` (ignored when ``reference`` is a Reference).
        method: ``auto`` (Evidently's choice per column) or one of :data:`METHODS` for every column.
        threshold: overrides the method's default threshold (a p-value or a distance) for every column.
        drift_share: dataset drift when at least this share of the columns drifted.
        reference_predictions, current_predictions: the model's outputs, for prediction drift; both
            needed (``reference_predictions`` may instead live in the Reference).
    """
    _check_method(method)
    if not 0.0 < drift_share <= 1.0:
        raise ValueError(f"`drift_share` must be in (0, 1], got {drift_share!r}")
    if threshold is not None and not (math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"`threshold` must be a non-negative number, got {threshold!r}")
    ref = reference if isinstance(reference, Reference) else Reference(reference, feature_types)
    if reference_predictions is not None and ref.prediction is None:
        ref.set_predictions(reference_predictions)
    empty = pd.Series([], dtype=object)
    results = tuple(
        col.test(col.current(current[name] if name in current.columns else empty), method, threshold)
        for name, col in ref.columns.items()
    )
    share = sum(c.drifted for c in results) / len(results) if results else 0.0
    prediction = None
    if ref.prediction is not None and current_predictions is not None:
        cur = ref.prediction.current(_series(current_predictions))
        prediction = ref.prediction.test(cur, method, threshold)
    return DriftReport(
        columns=results,
        share_drifted=share,
        dataset_drift=bool(results) and share >= drift_share,
        prediction_drift=prediction,
        drift_share=drift_share,
    )
