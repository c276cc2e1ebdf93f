"""Leak detection: training columns that give the target away (a post-outcome column, a copy, a relabelling).

Rules, each judged on the training rows only, each a :class:`Leak` with the rule, the column and the figure:

- ``equals_target``: the column equals the target.
- ``determines_class``: every value of the column goes with one class (and the column is not an ID).
- ``separates_classes``: a numeric column whose values put every pair of classes apart by a threshold
  (pairwise rank AUC at least ``min_auc`` or at most ``1 - min_auc``) with empty space between them (a gap
  of at least ``min_gap`` typical spacings), e.g. ``label * 10 + noise``. The gap tells a value recorded
  after the outcome from a feature the label is defined by (``y = x > 0``: the classes touch at the
  threshold); the latter is honest and kept.
- ``monotone_in_target``: the rank correlation with a numeric target reaches ``min_rank_corr``.
- ``linear_in_target``: the Pearson correlation with a numeric target reaches ``min_corr``.

The thresholds leave every feature of the bundled scikit-learn sets (digits, iris, breast_cancer, wine,
diabetes) unflagged: an honest feature rarely puts every class apart without one mistake.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

LeakRule = Literal["equals_target", "determines_class", "separates_classes", "monotone_in_target", "linear_in_target"]

MIN_AUC = 0.999
MIN_GAP = 20.0
MIN_RANK_CORR = 0.9999
MIN_CORR = 0.999


@dataclass(frozen=True)
class Leak:
    """A column found to give the target away, with the evidence; ``kept`` when the factory file keeps it."""

    feature: str
    rule: LeakRule
    figure: float  # the AUC, correlation or share of rows the rule measured
    reason: str
    kept: bool = False

    @property
    def action(self) -> str:
        return "kept" if self.kept else "dropped"

    def as_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "rule": self.rule,
            "figure": self.figure,
            "reason": self.reason,
            "action": self.action,
        }


def _numeric(col: pd.Series) -> np.ndarray | None:
    if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
        values = col.to_numpy(dtype=float, na_value=np.nan)
        return values if np.isfinite(values).all() else None
    return None


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    return _pearson(pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy())


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _pair_separation(va: np.ndarray, vb: np.ndarray) -> tuple[float, float]:
    """Rank AUC of the pair folded to [0.5, 1], and the empty gap at the best threshold between the two classes
    (the few rows on the wrong side of it set aside) in units of the pair's median spacing between neighbours."""
    ranks = pd.Series(np.concatenate([va, vb])).rank().to_numpy()
    auc = (ranks[: len(va)].sum() - len(va) * (len(va) + 1) / 2) / (len(va) * len(vb))
    low, high = (va, vb) if auc < 0.5 else (vb, va)  # auc is P(a above b)
    values = np.concatenate([low, high])
    order = np.argsort(values, kind="stable")
    is_high = np.concatenate([np.zeros(len(low), bool), np.ones(len(high), bool)])[order]
    wrong = np.concatenate([[0], np.cumsum(is_high)]) + np.concatenate([np.cumsum((~is_high)[::-1])[::-1], [0]])
    cut = int(np.argmin(wrong))  # rows [0, cut) are called low
    kept = values[order]
    lows, highs = kept[:cut][~is_high[:cut]], kept[cut:][is_high[cut:]]
    steps = np.diff(kept)
    steps = steps[steps > 0]
    if not len(lows) or not len(highs) or not len(steps):
        return max(auc, 1.0 - auc), 0.0
    gap = float(highs.min() - lows.max())
    return max(auc, 1.0 - auc), max(gap, 0.0) / float(np.median(steps))


def _separation(
    values: np.ndarray, target: np.ndarray, classes: np.ndarray, min_auc: float, min_gap: float
) -> tuple[float, float]:
    """The least separated pair of classes: its AUC and gap ratio; stops at the first pair below a bar."""
    worst_auc, worst_gap = 1.0, math.inf
    for i, a in enumerate(classes):
        for b in classes[i + 1 :]:
            auc, gap = _pair_separation(values[target == a], values[target == b])
            worst_auc, worst_gap = min(worst_auc, auc), min(worst_gap, gap)
            if worst_auc < min_auc or worst_gap < min_gap:
                return worst_auc, worst_gap
    return worst_auc, worst_gap


def find_leaks(
    X: pd.DataFrame,
    y: Any,
    *,
    task: str,
    max_unique_share: float = 0.5,
    min_rank_corr: float = MIN_RANK_CORR,
    min_corr: float = MIN_CORR,
    min_auc: float = MIN_AUC,
    min_gap: float = MIN_GAP,
    min_class_rows: int = 5,
) -> list[Leak]:
    """Columns of the training rows ``X`` that give the target ``y`` away, in column order.

    A column determines a class target when every one of its values goes with one class, there are at least
    two values, and it is not an ID (distinct values at most ``max_unique_share`` of the rows). A numeric
    column separates the classes when every pair of classes (each with at least ``min_class_rows`` rows) is
    put apart by a threshold with rank AUC ``min_auc`` and a gap of ``min_gap`` typical spacings. A numeric target is leaked by a column equal to it,
    whose rank correlation reaches ``min_rank_corr``, or whose correlation reaches ``min_corr``.
    """
    target = np.asarray(y)
    n = len(target)
    found: list[Leak] = []
    if n < 2:
        return found
    yv = target.astype(float) if task == "regression" else None
    classes = np.unique(target) if task == "classification" else np.array([])
    counts = np.array([(target == c).sum() for c in classes])
    separable = len(classes) >= 2 and counts.min() >= min_class_rows
    for name in map(str, X.columns):
        col = X[name]
        values = _numeric(col)
        if values is not None and yv is not None:
            leak = _regression_leak(name, values, yv, min_rank_corr, min_corr)
            if leak is not None:
                found.append(leak)
            continue
        if task != "classification" or len(classes) < 2:
            continue
        frame = pd.DataFrame({"x": col.astype(object).where(col.notna(), "\0missing").to_numpy(), "y": target})
        distinct = frame["x"].nunique()
        if 2 <= distinct <= max_unique_share * n and (frame.groupby("x")["y"].nunique() == 1).all():
            if values is not None and np.array_equal(values, target.astype(float)):
                found.append(Leak(name, "equals_target", 1.0, f"feature {name!r} equals the target"))
            else:
                found.append(
                    Leak(
                        name,
                        "determines_class",
                        1.0,
                        f"feature {name!r} determines the target (each of its values goes with one class)",
                    )
                )
            continue
        if values is not None and separable and distinct >= 2:
            auc, gap = _separation(values, target, classes, min_auc, min_gap)
            if auc >= min_auc and gap >= min_gap:
                found.append(
                    Leak(
                        name,
                        "separates_classes",
                        round(auc, 6),
                        f"feature {name!r} separates the classes by a threshold with empty space between them "
                        f"(rank AUC {auc:.4f}, a gap of {gap:.0f} typical spacings, for the least separated pair)",
                    )
                )
    return found


def _regression_leak(name: str, values: np.ndarray, yv: np.ndarray, min_rank: float, min_corr: float) -> Leak | None:
    if np.allclose(values, yv, equal_nan=False):
        return Leak(name, "equals_target", 1.0, f"feature {name!r} equals the target")
    rho = _spearman(values, yv)
    if abs(rho) >= min_rank:
        return Leak(
            name,
            "monotone_in_target",
            round(rho, 6),
            f"feature {name!r} is a monotone function of the target (rank correlation {rho:.5f})",
        )
    r = _pearson(values, yv)
    if abs(r) >= min_corr:
        return Leak(
            name,
            "linear_in_target",
            round(r, 6),
            f"feature {name!r} is a linear function of the target (correlation {r:.5f})",
        )
    return None
