"""The metrics suite, written with numpy directly.

scikit-learn's metrics check their inputs at a cost of about a millisecond per call; the factory computes
a dozen metrics per trial and targets hundreds of trials per second, so every metric here is a few numpy
operations on arrays the caller has already shaped. The tests compare each one with scikit-learn's.

Conventions (they match scikit-learn's where scikit-learn defines the metric):

- classification: ``y_true`` holds class indices ``0..n_classes-1``, ``predictions`` an ``(n, n_classes)``
  probability matrix. Probabilities are clipped to ``[0, inf)``, NaN becomes 0 and each row is
  renormalised (a row that sums to 0 becomes uniform). The predicted class is the first arg-max.
- ``f1``: the positive class 1 when ``n_classes == 2``; otherwise the macro mean over the classes that
  occur in ``y_true`` or in the predictions.
- ``balanced_accuracy``: mean recall over the classes present in ``y_true``.
- ``roc_auc``: binary AUC of class 1; multiclass: one-vs-rest macro mean over the classes present in
  ``y_true``; NaN when fewer than two classes are present. Ties get average ranks.
- ``log_loss``: mean of ``-log(clip(p_true, 1e-15, 1))``.
- ``ece``: 10 equal-width bins ``(0, .1], (.1, .2], ... (.9, 1]`` on the top-class confidence;
  ``sum_b |correct_b - confidence_b| / n``.
- regression: ``rmse``, ``mae``, ``r2`` (1.0 for a perfect fit of a constant target, 0.0 for an
  imperfect one, as scikit-learn does).
- fairness, when ``groups`` is given (None and NaN form one group, "missing"):
  ``demographic_parity_diff`` = max over classes of (max - min over groups of the rate of predicting that
  class); ``equalized_odds_diff`` = max over classes of the larger of the group spreads of the true-positive
  rate and of the false-positive rate (one-vs-rest; a group without positives, or without negatives, of a
  class does not take part for that rate); ``fairness_gap`` = the larger of the two. Regression:
  ``fairness_gap`` = (max - min over groups of the MAE) / overall MAE (0 when the overall MAE is 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError
from ..spec import TaskKind

if TYPE_CHECKING:
    from ._custom import CustomMetric

LOG_LOSS_EPS = 1e-15
ECE_BINS = 10


def _check_task(task: str) -> None:
    if task not in ("classification", "regression"):
        raise DataError(f"task must be 'classification' or 'regression', got {task!r}")


def as_probabilities(predictions: Any, n_classes: int | None = None) -> np.ndarray:
    """An ``(n, n_classes)`` float matrix with non-negative rows that sum to 1.

    A 1-D array with ``n_classes == 2`` is read as the probability of class 1.
    """
    p = np.asarray(predictions, dtype=float)
    if p.ndim == 1 and n_classes in (None, 2):
        p = np.column_stack([1.0 - p, p])
    if p.ndim != 2:
        raise DataError(
            f"classification predictions must be an (n, n_classes) probability matrix, got shape {p.shape}; "
            "return predict_proba's output"
        )
    if n_classes is not None and p.shape[1] != n_classes:
        raise DataError(
            f"classification predictions have {p.shape[1]} columns but the task has {n_classes} classes; "
            "return one probability column per class, in the encoded class order"
        )
    if not np.all(np.isfinite(p)) or p.min(initial=0.0) < 0.0:
        p = np.where(np.isfinite(p), p, np.where(np.isposinf(p), 1.0, 0.0))
        p = np.clip(p, 0.0, None)
    sums = p.sum(axis=1, keepdims=True)
    if np.abs(sums - 1.0).max(initial=0.0) > 1e-9:
        zero = sums[:, 0] <= 0.0
        if zero.any():
            p = p.copy()
            p[zero] = 1.0
            sums = p.sum(axis=1, keepdims=True)
        p = p / sums
    return p


def _as_labels(y_true: Any, n: int, n_classes: int) -> np.ndarray:
    y = np.asarray(y_true)
    if y.shape != (n,):
        raise DataError(f"y_true has shape {y.shape} but the predictions have {n} rows; pass one label per row")
    if y.dtype.kind not in "iub":
        if y.dtype.kind == "f" and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise DataError(
                f"classification y_true must hold integer class indices, got dtype {y.dtype}; "
                "encode the labels as 0..n_classes-1 first"
            )
    y = y.astype(np.int64, copy=False)
    if n and (y.min() < 0 or y.max() >= n_classes):
        raise DataError(
            f"classification y_true must lie in 0..{n_classes - 1}, got values from {y.min()} to {y.max()}; "
            "encode the labels with the training classes"
        )
    return y


def predicted_labels(task: TaskKind, predictions: Any) -> np.ndarray:
    """Class indices (classification: the first arg-max of each row) or the predicted values (regression)."""
    _check_task(task)
    if task == "regression":
        return np.asarray(predictions, dtype=float).reshape(-1)
    p = np.asarray(predictions, dtype=float)
    if p.ndim == 1:
        return (p > 0.5).astype(np.int64)
    return np.argmax(p, axis=1)


# ---------------------------------------------------------------------------------------------------------
# group encoding


_MISSING = object()


def encode_groups(groups: Any) -> tuple[np.ndarray, tuple[Any, ...]]:
    """Group codes ``0..G-1`` per row and the group labels; None and NaN form one group, "missing"."""
    g = np.asarray(groups)
    if g.ndim != 1:
        g = g.reshape(-1)
    if g.dtype.kind in "biuUS":
        labels, codes = np.unique(g, return_inverse=True)
        return codes.astype(np.int64), tuple(labels.tolist())
    if g.dtype.kind == "f":
        nan = np.isnan(g)
        labels, codes = np.unique(np.where(nan, 0.0, g)[~nan], return_inverse=True)
        out = np.empty(g.shape[0], dtype=np.int64)
        out[~nan] = codes
        if nan.any():
            out[nan] = len(labels)
            return out, (*labels.tolist(), "missing")
        return out, tuple(labels.tolist())
    index: dict[Any, int] = {}
    out = np.empty(g.shape[0], dtype=np.int64)
    for i, value in enumerate(g.tolist()):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            value = _MISSING
        code = index.get(value)
        if code is None:
            code = index[value] = len(index)
        out[i] = code
    return out, tuple("missing" if k is _MISSING else k for k in index)


# ---------------------------------------------------------------------------------------------------------
# classification


def _confusion(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(y * k + pred, minlength=k * k).reshape(k, k)


def _f1_from_confusion(cm: np.ndarray) -> float:
    k = cm.shape[0]
    tp = np.diag(cm).astype(float)
    true = cm.sum(axis=1)
    pred = cm.sum(axis=0)
    denom = true + pred
    if k == 2:
        return float(2.0 * tp[1] / denom[1]) if denom[1] > 0 else 0.0
    present = denom > 0
    if not present.any():
        return 0.0
    return float(np.mean(2.0 * tp[present] / denom[present]))


def _balanced_from_confusion(cm: np.ndarray) -> float:
    true = cm.sum(axis=1)
    present = true > 0
    return float(np.mean(np.diag(cm)[present] / true[present]))


def _rank_sums(s: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Per row of ``s`` (m, n): the sum of the 1-based ranks of the positive entries, ties averaged."""
    m, n = s.shape
    order = np.argsort(s, axis=1, kind="stable")
    ss = np.take_along_axis(s, order, axis=1).ravel()
    lab = np.take_along_axis(positive, order, axis=1).ravel()
    start = np.empty(m * n, dtype=bool)
    start[0] = True
    np.not_equal(ss[1:], ss[:-1], out=start[1:])
    start[::n] = True
    if start.all():  # no ties: a rank is the position
        rank = np.tile(np.arange(1.0, n + 1.0), m)
        return np.bincount(np.repeat(np.arange(m), n), weights=lab * rank, minlength=m)
    starts = np.flatnonzero(start)
    size = np.diff(np.append(starts, m * n))
    pos = np.add.reduceat(lab.astype(float), starts)
    average_rank = starts % n + 1.0 + (size - 1) / 2.0
    return np.bincount(starts // n, weights=pos * average_rank, minlength=m)


def _roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Mann-Whitney form of the ROC AUC (equal to the trapezoid under the ROC curve, ties included)."""
    k = p.shape[1]
    n = y.shape[0]
    counts = np.bincount(y, minlength=k)
    classes = np.array([1]) if k == 2 else np.flatnonzero(counts)
    if np.count_nonzero(counts) < 2:
        return math.nan
    s = np.ascontiguousarray(p[:, classes].T)
    positive = y[None, :] == classes[:, None]
    n_pos = counts[classes].astype(float)
    auc = (_rank_sums(s, positive) - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * (n - n_pos))
    return float(auc.mean())


def _ece(y: np.ndarray, p: np.ndarray, pred: np.ndarray) -> float:
    conf = p[np.arange(p.shape[0]), pred]
    correct = (pred == y).astype(float)
    bins = np.clip(np.ceil(conf * ECE_BINS).astype(np.int64) - 1, 0, ECE_BINS - 1)
    gap = np.bincount(bins, weights=correct - conf, minlength=ECE_BINS)
    return float(np.abs(gap).sum() / p.shape[0])


def _spread(rates: np.ndarray) -> np.ndarray:
    """max - min along axis 0, ignoring NaN; 0 where fewer than one value is defined."""
    hi = np.fmax.reduce(rates, axis=0)
    lo = np.fmin.reduce(rates, axis=0)
    out = hi - lo
    return np.where(np.isnan(out), 0.0, out)


def _classification_fairness(y: np.ndarray, pred: np.ndarray, codes: np.ndarray, k: int) -> dict[str, float]:
    n_groups = int(codes.max()) + 1 if codes.size else 0
    if n_groups == 0:
        return {"demographic_parity_diff": math.nan, "equalized_odds_diff": math.nan, "fairness_gap": math.nan}
    cm = np.bincount((codes * k + y) * k + pred, minlength=n_groups * k * k).reshape(n_groups, k, k)
    size = cm.sum(axis=(1, 2)).astype(float)
    has_rows = size > 0
    cm = cm[has_rows]
    size = size[has_rows]
    predicted = cm.sum(axis=1).astype(float)  # (G, k): rows predicted as each class
    positives = cm.sum(axis=2).astype(float)  # (G, k): rows whose true class is each class
    tp = np.diagonal(cm, axis1=1, axis2=2).astype(float)
    negatives = size[:, None] - positives
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = predicted / size[:, None]
        tpr = np.where(positives > 0, tp / positives, np.nan)
        fpr = np.where(negatives > 0, (predicted - tp) / negatives, np.nan)
    dpd = float(_spread(rate).max(initial=0.0))
    eod = float(max(_spread(tpr).max(initial=0.0), _spread(fpr).max(initial=0.0)))
    return {"demographic_parity_diff": dpd, "equalized_odds_diff": eod, "fairness_gap": max(dpd, eod)}


def classification_metrics(y_true: Any, predictions: Any, *, n_classes: int, groups: Any = None) -> dict[str, float]:
    """Every classification metric of the catalogue that predictions alone determine."""
    p = as_probabilities(predictions, n_classes)
    n = p.shape[0]
    y = _as_labels(y_true, n, n_classes)
    if n == 0:
        raise DataError("cannot compute metrics on 0 rows; the validation split is empty")
    pred = np.argmax(p, axis=1)
    cm = _confusion(y, pred, n_classes)
    correct = np.trace(cm)
    p_true = p[np.arange(n), y]
    out = {
        "accuracy": float(correct / n),
        "balanced_accuracy": _balanced_from_confusion(cm),
        "f1": _f1_from_confusion(cm),
        "roc_auc": _roc_auc(y, p),
        "log_loss": float(-np.mean(np.log(np.clip(p_true, LOG_LOSS_EPS, 1.0)))),
        "ece": _ece(y, p, pred),
    }
    if groups is not None:
        codes = _codes(groups, n)
        out.update(_classification_fairness(y, pred, codes, n_classes))
    return out


# ---------------------------------------------------------------------------------------------------------
# regression


def _r2(ss_res: float, ss_tot: float) -> float:
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


def regression_metrics(y_true: Any, predictions: Any, *, groups: Any = None) -> dict[str, float]:
    """rmse, mae, r2 (and the fairness gap when ``groups`` is given). NaN predictions give NaN metrics."""
    pr = np.asarray(predictions, dtype=float)
    if pr.ndim == 2 and pr.shape[1] == 1:
        pr = pr[:, 0]
    if pr.ndim != 1:
        raise DataError(f"regression predictions must be a 1-D array, got shape {pr.shape}; return predict()")
    y = np.asarray(y_true, dtype=float)
    if y.shape != pr.shape:
        raise DataError(f"y_true has shape {y.shape} but the predictions have shape {pr.shape}; one per row")
    if y.shape[0] == 0:
        raise DataError("cannot compute metrics on 0 rows; the validation split is empty")
    err = y - pr
    sq = err * err
    ss_res = float(sq.sum())
    dev = y - y.mean()
    abs_err = np.abs(err)
    mae = float(abs_err.mean())
    out = {"rmse": math.sqrt(ss_res / y.shape[0]), "mae": mae, "r2": _r2(ss_res, float(dev @ dev))}
    if groups is not None:
        codes = _codes(groups, y.shape[0])
        out["fairness_gap"] = _regression_gap(abs_err, codes, mae)
    return out


def _regression_gap(abs_err: np.ndarray, codes: np.ndarray, mae: float) -> float:
    counts = np.bincount(codes)
    sums = np.bincount(codes, weights=abs_err)
    present = counts > 0
    group_mae = sums[present] / counts[present]
    spread = float(group_mae.max() - group_mae.min())
    if math.isnan(spread) or math.isnan(mae):
        return math.nan
    if mae == 0.0:
        return 0.0
    return spread / mae


def _codes(groups: Any, n: int) -> np.ndarray:
    if isinstance(groups, GroupCodes):
        codes = groups.codes
    else:
        codes, _ = encode_groups(groups)
    if codes.shape != (n,):
        raise DataError(f"groups has {codes.shape[0]} entries but there are {n} rows; pass one group per row")
    return codes


class GroupCodes:
    """Groups encoded once (``encode_groups``) to be passed to many metric calls on the same rows."""

    __slots__ = ("codes", "labels")

    def __init__(self, groups: Any) -> None:
        self.codes, self.labels = encode_groups(groups)

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def take(self, rows: np.ndarray) -> GroupCodes:
        """The codes of the given rows (for bootstrap resamples); the labels stay the same."""
        new = GroupCodes.__new__(GroupCodes)
        new.codes = self.codes[rows]
        new.labels = self.labels
        return new


def compute_metrics(
    task: TaskKind,
    y_true: Any,
    predictions: Any,
    *,
    n_classes: int,
    groups: Any = None,
    custom: Mapping[str, CustomMetric] | None = None,
) -> dict[str, float]:
    """Every metric the predictions determine, by catalogue name, then the custom ones by their names.

    Args:
        task: ``"classification"`` or ``"regression"``.
        y_true: class indices ``0..n_classes-1`` (classification) or float targets.
        predictions: ``(n, n_classes)`` probabilities or ``(n,)`` values.
        n_classes: number of classes (ignored for regression).
        groups: one group label per row (any dtype; None and NaN form the group "missing"), or a
            :class:`GroupCodes` made once for the same rows; adds the fairness metrics.
        custom: the factory's own metrics (``load_custom_metrics``), computed from the same predictions.
    """
    _check_task(task)
    if task == "classification":
        out = classification_metrics(y_true, predictions, n_classes=n_classes, groups=groups)
    else:
        out = regression_metrics(y_true, predictions, groups=groups)
    for name, metric in (custom or {}).items():
        out[name] = metric(task, y_true, predictions)
    return out


def metric_value(
    task: TaskKind,
    metric: str,
    y_true: Any,
    predictions: Any,
    *,
    n_classes: int,
    custom: Mapping[str, CustomMetric] | None = None,
) -> float | None:
    """The one metric ``metric``, built-in or the factory's own (in ``custom``); None where the predictions do not
    determine it.

    For the places that rank by a single metric: a factory's own metric is computed by its function alone, a
    built-in one from the catalogue, so no caller has to remember that the metric may be the factory's.
    """
    own = (custom or {}).get(metric)
    if own is not None:
        return float(own(task, y_true, predictions))
    got = compute_metrics(task, y_true, predictions, n_classes=n_classes).get(metric)
    return None if got is None else float(got)


PREDICTION_METRICS: dict[TaskKind, tuple[str, ...]] = {
    "classification": (
        "accuracy",
        "balanced_accuracy",
        "f1",
        "roc_auc",
        "log_loss",
        "ece",
        "demographic_parity_diff",
        "equalized_odds_diff",
        "fairness_gap",
    ),
    "regression": ("rmse", "mae", "r2", "fairness_gap"),
}
"""The metrics :func:`compute_metrics` can return per task (the fairness ones only with ``groups``)."""

GROUP_METRICS: tuple[str, ...] = ("demographic_parity_diff", "equalized_odds_diff", "fairness_gap")
