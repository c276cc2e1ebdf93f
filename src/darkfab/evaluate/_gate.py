"""The gate: does a candidate beat the champion on the sealed test set, with bootstrap evidence?

Rows are resampled with replacement ``n_boot`` times; the SAME index draws score the candidate and the
champion (a paired bootstrap), so the noise they share cancels out of their difference. With
``delta_b = s * (candidate_b - champion_b)`` (``s = +1`` to maximise, ``-1`` to minimise, so a positive
delta is always a gain), the candidate passes when ``P(delta_b > min_improvement) >= confidence``.

Metrics that are a mean over rows (accuracy, log loss, rmse, mae, ...) or a function of per-resample counts
(balanced accuracy, F1, ECE, r2) are computed for all resamples at once from an ``(n_boot, n)`` index
matrix; ROC AUC sorts each column once and weights the rows by how often each resample drew them; the
fairness metrics loop over resamples.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DataError, SpecError
from ..spec import METRICS, Direction, TaskKind
from ._metrics import (
    GROUP_METRICS,
    LOG_LOSS_EPS,
    PREDICTION_METRICS,
    GroupCodes,
    _as_labels,
    _check_task,
    _classification_fairness,
    _regression_gap,
    as_probabilities,
)

if TYPE_CHECKING:
    from ._custom import CustomMetric


@dataclass(frozen=True)
class ScoreCI:
    """A score on all rows with a bootstrap percentile interval."""

    score: float
    low: float
    high: float


@dataclass(frozen=True)
class GateVerdict:
    """The gate's decision with its evidence. ``delta`` > 0 always means the candidate is better."""

    passed: bool
    metric: str
    candidate: ScoreCI
    champion: ScoreCI | None
    delta: float  # NaN without a champion
    delta_low: float
    delta_high: float
    p_better: float  # P(delta > min_improvement) over resamples; NaN without a champion
    min_improvement: float
    confidence: float
    reason: str
    weak_evidence: bool = False  # a first champion passed on the search's evidence (evaluate/_first.py)


def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """An ``(n_boot, n)`` matrix of row indices drawn with replacement."""
    if n <= 0:
        raise DataError("cannot bootstrap 0 rows; the split is empty")
    if n_boot < 1:
        raise SpecError(f"n_boot must be >= 1, got {n_boot}; 1000 is a good default")
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _bootstrap_roc_auc(y: np.ndarray, p: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """ROC AUC of every resample without sorting each one.

    A resample is a weighting of the original rows (``w[b, i]`` = how often row ``i`` was drawn), so each
    column is sorted once; within resample ``b`` a tie group of scores with total weight ``size`` above
    ``below`` drawn rows holds the average rank ``below + (size + 1) / 2``.
    """
    b, n = idx.shape
    k = p.shape[1]
    weights = np.bincount((np.arange(b)[:, None] * n + idx).ravel(), minlength=b * n).reshape(b, n)
    classes = [1] if k == 2 else list(range(k))
    auc = np.zeros((b, len(classes)))
    present = np.zeros((b, len(classes)), dtype=bool)
    for j, c in enumerate(classes):
        order = np.argsort(p[:, c], kind="stable")
        s = p[order, c]
        starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
        w = weights[:, order]
        size = np.add.reduceat(w, starts, axis=1).astype(float)
        pos = np.add.reduceat(w * (y[order] == c), starts, axis=1).astype(float)
        below = np.cumsum(size, axis=1) - size
        rank_sum = (pos * (below + (size + 1.0) / 2.0)).sum(axis=1)
        n_pos = pos.sum(axis=1)
        n_neg = n - n_pos
        with np.errstate(divide="ignore", invalid="ignore"):
            auc[:, j] = (rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg)
        present[:, j] = n_pos > 0
    if k == 2:
        return auc[:, 0]  # NaN where a resample holds one class only
    n_present = present.sum(axis=1)
    total = np.where(present, auc, 0.0).sum(axis=1)
    return np.where(n_present >= 2, total / np.maximum(n_present, 1), np.nan)


class _Prepared:
    """Per-row quantities of one prediction set, computed once and indexed by every resample."""

    def __init__(
        self,
        task: TaskKind,
        metric: str,
        y_true: Any,
        predictions: Any,
        groups: Any,
        custom: Mapping[str, CustomMetric] | None = None,
    ) -> None:
        _check_task(task)
        allowed = PREDICTION_METRICS[task]
        self.custom = (custom or {}).get(metric)
        self.groups: GroupCodes | None = None
        if self.custom is not None:
            self.task = task
            self.metric = metric
            self.y = np.asarray(y_true)
            self.custom_pred = self.custom.y_pred(task, predictions)
            self.n = self.custom_pred.shape[0]
            if self.y.shape[0] != self.n:
                raise DataError(f"y_true has {self.y.shape[0]} rows but the predictions have {self.n}")
            return
        if metric not in allowed:
            raise SpecError(
                f"metric {metric!r} cannot be scored from {task} predictions, so it cannot be bootstrapped; "
                f"gate on one of: {', '.join(allowed)}"
            )
        self.task = task
        self.metric = metric
        if metric in GROUP_METRICS:
            if groups is None:
                raise SpecError(f"metric {metric!r} needs the group of each row; pass groups=")
            self.groups = groups if isinstance(groups, GroupCodes) else GroupCodes(groups)
        if task == "classification":
            p = as_probabilities(predictions)
            self.p = p
            self.k = p.shape[1]
            self.n = p.shape[0]
            self.y = _as_labels(y_true, self.n, self.k)
            self.pred = np.argmax(p, axis=1)
            self.correct = (self.pred == self.y).astype(float)
        else:
            pr = np.asarray(predictions, dtype=float).reshape(-1)
            self.n = pr.shape[0]
            self.y = np.asarray(y_true, dtype=float).reshape(-1)
            if self.y.shape != pr.shape:
                raise DataError(f"y_true has {self.y.shape[0]} rows but the predictions have {self.n}")
            self.err = self.y - pr
        if self.groups is not None and len(self.groups) != self.n:
            raise DataError(f"groups has {len(self.groups)} entries but there are {self.n} rows")

    def scores(self, idx: np.ndarray) -> np.ndarray:
        """The metric on each resample (one row of ``idx`` each)."""
        b, n = idx.shape
        m = self.metric
        if self.custom is not None:
            fn = self.custom
            return np.array([fn.value(self.y[r], self.custom_pred[r]) for r in idx], dtype=float)
        if self.task == "regression":
            if m == "rmse":
                return np.sqrt((self.err**2)[idx].mean(axis=1))
            if m == "mae":
                return np.abs(self.err)[idx].mean(axis=1)
            if m == "r2":
                yb = self.y[idx]
                dev = yb - yb.mean(axis=1, keepdims=True)
                ss_tot = (dev * dev).sum(axis=1)
                ss_res = (self.err**2)[idx].sum(axis=1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    r2 = 1.0 - ss_res / ss_tot
                return np.where(ss_tot == 0.0, np.where(ss_res == 0.0, 1.0, 0.0), r2)
            assert self.groups is not None
            abs_err = np.abs(self.err)
            return np.array([_regression_gap(abs_err[r], self.groups.codes[r], float(abs_err[r].mean())) for r in idx])
        k = self.k
        if m == "accuracy":
            return self.correct[idx].mean(axis=1)
        if m == "log_loss":
            loss = -np.log(np.clip(self.p[np.arange(self.n), self.y], LOG_LOSS_EPS, 1.0))
            return loss[idx].mean(axis=1)
        rows = np.arange(b)[:, None]
        if m == "balanced_accuracy":
            cell = (rows * k + self.y[idx]).ravel()
            counts = np.bincount(cell, minlength=b * k).reshape(b, k)
            hits = np.bincount(cell, weights=self.correct[idx].ravel(), minlength=b * k).reshape(b, k)
            present = counts > 0
            recall = np.divide(hits, counts, out=np.zeros((b, k)), where=present)
            return recall.sum(axis=1) / present.sum(axis=1)
        if m == "f1":
            cell = ((rows * k + self.y[idx]) * k + self.pred[idx]).ravel()
            cm = np.bincount(cell, minlength=b * k * k).reshape(b, k, k)
            tp = np.diagonal(cm, axis1=1, axis2=2).astype(float)
            denom = cm.sum(axis=2) + cm.sum(axis=1)
            f1 = np.divide(2.0 * tp, denom, out=np.zeros((b, k)), where=denom > 0)
            if k == 2:
                return f1[:, 1]
            present = denom > 0
            return f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1)
        if m == "ece":
            conf = self.p[np.arange(self.n), self.pred]
            bins = np.clip(np.ceil(conf * 10).astype(np.int64) - 1, 0, 9)
            gap = np.bincount(
                (rows * 10 + bins[idx]).ravel(), weights=(self.correct - conf)[idx].ravel(), minlength=b * 10
            ).reshape(b, 10)
            return np.abs(gap).sum(axis=1) / n
        if m == "roc_auc":
            return _bootstrap_roc_auc(self.y, self.p, idx)
        assert self.groups is not None
        codes = self.groups.codes
        return np.array([_classification_fairness(self.y[r], self.pred[r], codes[r], k)[m] for r in idx], dtype=float)

    def point(self) -> float:
        return float(self.scores(np.arange(self.n)[None, :])[0])


def bootstrap_scores(
    task: TaskKind,
    metric: str,
    y_true: Any,
    predictions: Any,
    *,
    n_boot: int,
    seed: int,
    groups: Any = None,
    custom: Mapping[str, CustomMetric] | None = None,
) -> np.ndarray:
    """The metric on ``n_boot`` resamples of the rows (``bootstrap_indices(n, n_boot, seed)``)."""
    prepared = _Prepared(task, metric, y_true, predictions, groups, custom)
    return prepared.scores(bootstrap_indices(prepared.n, n_boot, seed))


def _interval(scores: np.ndarray, level: float) -> tuple[float, float]:
    finite = scores[np.isfinite(scores)]
    if finite.size == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(finite, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(lo), float(hi)


def _check_level(name: str, value: float) -> None:
    if not 0.0 < value < 1.0:
        raise SpecError(f"{name} must lie strictly between 0 and 1, got {value}; 0.9 or 0.95 are usual")


def score_with_ci(
    task: TaskKind,
    metric: str,
    y_true: Any,
    predictions: Any,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    groups: Any = None,
    custom: Mapping[str, CustomMetric] | None = None,
) -> ScoreCI:
    """The metric on all rows and its central bootstrap percentile interval at ``level``.

    ``custom`` holds the factory's own metrics (``load_custom_metrics``); ``metric`` may name one of them.
    """
    _check_level("level", level)
    prepared = _Prepared(task, metric, y_true, predictions, groups, custom)
    low, high = _interval(prepared.scores(bootstrap_indices(prepared.n, n_boot, seed)), level)
    return ScoreCI(prepared.point(), low, high)


def baseline_predictions(task: TaskKind, y_train: Any, n_rows: int, *, n_classes: int = 0) -> np.ndarray:
    """What a model that ignores the features predicts: the training class prior, or the training mean.

    Pass it as the champion to :func:`gate` when there is no champion yet.
    """
    _check_task(task)
    y = np.asarray(y_train)
    if task == "regression":
        return np.full(n_rows, float(np.mean(y.astype(float))))
    prior = np.bincount(y.astype(np.int64), minlength=n_classes).astype(float)
    prior /= prior.sum()
    return np.tile(prior, (n_rows, 1))


def _fmt(metric: str, x: float) -> str:
    info = METRICS.get(metric)
    return f"{x:.3f}" if info is not None and info.bounded else f"{x:.4g}"


def _check_gate(direction: str, confidence: float, level: float, min_improvement: float) -> None:
    if direction not in ("maximize", "minimize"):
        raise SpecError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    _check_level("confidence", confidence)
    _check_level("level", level)
    if not math.isfinite(min_improvement):
        raise SpecError(f"min_improvement must be a finite number, got {min_improvement}")


def _decision(
    metric: str,
    cand_text: str,
    cand_ci: ScoreCI,
    champ_ci: ScoreCI,
    delta: float,
    p_better: float,
    min_improvement: float,
    confidence: float,
) -> tuple[bool, str]:
    """Whether the candidate replaces the champion, and the sentence that says why."""

    def f(x: float) -> str:
        return _fmt(metric, x)

    m = f(min_improvement)
    if not math.isfinite(cand_ci.score):
        return False, f"{cand_text} is not finite, so it cannot replace the champion ({f(champ_ci.score)})"
    if not math.isfinite(champ_ci.score):
        return False, f"the champion's {metric} is not finite, so the gain of {cand_text} cannot be measured"
    if p_better >= confidence:
        return True, (
            f"{cand_text} beats champion {f(champ_ci.score)} by {f(delta)}; "
            f"P(gain > {m}) = {p_better:.2f} >= {confidence:.2f}"
        )
    return False, (
        f"{cand_text} does not beat champion {f(champ_ci.score)} by more than {m} with enough confidence "
        f"(gain {f(delta)}); P(gain > {m}) = {p_better:.2f} < {confidence:.2f}"
    )


def gate(
    *,
    task: TaskKind,
    metric: str,
    direction: Direction,
    y_true: Any,
    candidate: Any,
    champion: Any | None,
    min_improvement: float,
    confidence: float,
    n_boot: int,
    seed: int,
    groups: Any = None,
    level: float = 0.95,
    custom: Mapping[str, CustomMetric] | None = None,
) -> GateVerdict:
    """Decide whether ``candidate`` predictions beat ``champion`` predictions on the same rows.

    ``champion=None`` means no champion exists: the candidate passes when its own score is finite (pass
    :func:`baseline_predictions` as the champion to demand a gain over a feature-blind model instead).
    Score intervals and ``[delta_low, delta_high]`` are central bootstrap intervals at ``level``.
    """
    _check_gate(direction, confidence, level, min_improvement)
    if groups is not None and not isinstance(groups, GroupCodes):
        groups = GroupCodes(groups)
    cand = _Prepared(task, metric, y_true, candidate, groups, custom)
    idx = bootstrap_indices(cand.n, n_boot, seed)
    cand_boot = cand.scores(idx)
    lo, hi = _interval(cand_boot, level)
    cand_ci = ScoreCI(cand.point(), lo, hi)

    def f(x: float) -> str:
        return _fmt(metric, x)

    cand_text = f"candidate {metric} {f(cand_ci.score)} [{f(lo)}, {f(hi)}]"
    if champion is None:
        ok = math.isfinite(cand_ci.score)
        reason = (
            f"no champion existed; {cand_text} is finite, so it passes"
            if ok
            else f"no champion existed, but {cand_text} is not finite, so it fails"
        )
        return GateVerdict(
            ok, metric, cand_ci, None, math.nan, math.nan, math.nan, math.nan, min_improvement, confidence, reason
        )
    champ = _Prepared(task, metric, y_true, champion, groups, custom)
    if champ.n != cand.n:
        raise DataError(f"the champion's predictions have {champ.n} rows but the candidate's have {cand.n}")
    champ_boot = champ.scores(idx)
    clo, chi = _interval(champ_boot, level)
    champ_ci = ScoreCI(champ.point(), clo, chi)
    sign = 1.0 if direction == "maximize" else -1.0
    delta = sign * (cand_ci.score - champ_ci.score)
    deltas = sign * (cand_boot - champ_boot)
    finite = np.isfinite(deltas)
    p_better = float(np.mean(deltas[finite] > min_improvement)) if finite.any() else 0.0
    dlo, dhi = _interval(deltas, level)
    passed, reason = _decision(metric, cand_text, cand_ci, champ_ci, delta, p_better, min_improvement, confidence)
    return GateVerdict(
        passed, metric, cand_ci, champ_ci, delta, dlo, dhi, p_better, min_improvement, confidence, reason
    )
