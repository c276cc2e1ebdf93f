"""The search's score on small data: the mean over the training folds and the validation split."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from ..spec import TaskKind
from ._metrics import metric_value

if TYPE_CHECKING:
    from ._custom import CustomMetric


def cross_validated(
    task: TaskKind,
    metric: str,
    y_train: np.ndarray,
    oof: np.ndarray,
    folds: np.ndarray,
    valid: dict[str, float],
    *,
    n_classes: int,
    custom: Mapping[str, CustomMetric] | None = None,
) -> dict[str, float]:
    """The primary metric as the mean over the training folds (out-of-fold answers) and the validation split.

    The validation-only figure stays on record as ``valid_<metric>``; each fold's as ``cv_fold_<i>``. Empty when
    a fold cannot be scored. ``custom``: the factory's own metrics, one of which may be ``metric``.
    """
    scores = []
    for i in range(int(folds.max()) + 1):
        rows = folds == i
        got = metric_value(task, metric, y_train[rows], oof[rows], n_classes=n_classes, custom=custom)
        scores.append(math.nan if got is None else got)
    scores.append(float(valid.get(metric, math.nan)))
    if not all(math.isfinite(x) for x in scores):
        return {}
    out = {f"cv_fold_{i + 1}": x for i, x in enumerate(scores[:-1])}
    out.update(
        {
            f"valid_{metric}": scores[-1],
            "cv_folds": float(len(scores)),
            "cv_std": float(np.std(scores)),
            metric: float(np.mean(scores)),
        }
    )
    return out
