"""Live quality: the served model's score on the rows whose true label came back, against its sealed-test score.

Only metrics that need nothing but the predicted and the true value are computed live (accuracy and
balanced accuracy; RMSE, MAE and R²). When the champion was scored on another metric (ROC AUC, log
loss...), live quality is reported in the task's default metric and not compared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..spec import DEFAULT_PRIMARY, METRICS, TaskKind


def _accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(y == p))


def _balanced_accuracy(y: np.ndarray, p: np.ndarray) -> float:
    keys = [repr(v) for v in y]
    recalls = []
    for key in sorted(set(keys)):
        mask = np.array([k == key for k in keys])
        recalls.append(float(np.mean(y[mask] == p[mask])))
    return float(np.mean(recalls))


def _rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y.astype(float) - p.astype(float)) ** 2)))


def _mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(y.astype(float) - p.astype(float))))


def _r2(y: np.ndarray, p: np.ndarray) -> float:
    y, p = y.astype(float), p.astype(float)
    total = float(np.sum((y - y.mean()) ** 2))
    return float("nan") if total == 0 else 1.0 - float(np.sum((y - p) ** 2)) / total


LIVE_METRICS = {
    "accuracy": _accuracy,
    "balanced_accuracy": _balanced_accuracy,
    "rmse": _rmse,
    "mae": _mae,
    "r2": _r2,
}


def prediction_of(output: Any) -> Any:
    """The predicted value in a logged output (``{"prediction": ..., "probabilities": ...}`` or the bare value)."""
    if isinstance(output, dict):
        return output.get("prediction")
    return output


def live_score(labels: Sequence[Any], predictions: Sequence[Any], metric: str) -> float:
    """``metric`` of ``predictions`` against the true ``labels``; NaN without rows."""
    if metric not in LIVE_METRICS:
        raise ValueError(f"live quality is computed for {sorted(LIVE_METRICS)}, got {metric!r}")
    if len(labels) != len(predictions):
        raise ValueError(f"{len(labels)} labels but {len(predictions)} predictions")
    if not len(labels):
        return float("nan")
    regression = "regression" in METRICS[metric].tasks
    dtype = float if regression else object
    return LIVE_METRICS[metric](np.asarray(labels, dtype=dtype), np.asarray(predictions, dtype=dtype))


@dataclass(frozen=True)
class LiveQuality:
    """Live quality of one window.

    ``drop`` is how much worse than the champion's sealed-test score the live score is (positive =
    worse, whatever the metric's direction); ``decayed`` is True when it reaches the declared limit.
    """

    metric: str
    value: float | None
    labelled: int
    champion: float | None
    drop: float | None
    limit: float | None
    decayed: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": self.value,
            "labelled": self.labelled,
            "champion": self.champion,
            "drop": self.drop,
            "limit": self.limit,
            "decayed": self.decayed,
        }

    def describe(self) -> str:
        if self.value is None:
            return f"no live {self.metric} ({self.labelled} labelled rows)"
        text = f"live {self.metric} {self.value:.4g} over {self.labelled} labelled rows"
        if self.champion is not None and self.drop is not None:
            text += f", {self.drop:.4g} worse than the sealed-test {self.champion:.4g}"
            if self.limit is not None:
                text += f" (limit {self.limit:g})"
        return text


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def assess_quality(
    labels: Sequence[Any],
    predictions: Sequence[Any],
    *,
    task: TaskKind,
    champion_metric: str | None = None,
    champion_score: float | None = None,
    quality_drop: float | None = None,
    min_labels: int = 20,
) -> LiveQuality:
    """Live quality of labelled rows, and whether it fell ``quality_drop`` or more below the champion.

    Args:
        labels, predictions: the true and the predicted values of the labelled rows.
        task: ``classification`` or ``regression``.
        champion_metric, champion_score: the champion's sealed-test score (``metrics["sealed_test"]``).
        quality_drop: the declared limit (``monitor.quality_drop``); None never decays.
        min_labels: fewer labelled rows than this give a score but never a decay verdict.
    """
    comparable = champion_metric in LIVE_METRICS and task in METRICS[champion_metric].tasks
    metric = champion_metric if comparable and champion_metric else DEFAULT_PRIMARY[task]
    value = _finite(live_score(labels, predictions, metric)) if len(labels) else None
    champion = _finite(champion_score) if comparable else None
    drop = None
    if value is not None and champion is not None:
        drop = champion - value if METRICS[metric].direction == "maximize" else value - champion
    decayed = (
        quality_drop is not None and drop is not None and len(labels) >= min_labels and drop >= quality_drop - 1e-12
    )
    return LiveQuality(metric, value, len(labels), champion, drop, quality_drop, bool(decayed))
