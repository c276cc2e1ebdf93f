"""The catalogue of metric names a factory file may use, with direction and task.

It lives in ``spec`` because the file is validated against it; ``evaluate`` computes these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["maximize", "minimize"]
TaskKind = Literal["classification", "regression"]


@dataclass(frozen=True)
class MetricInfo:
    name: str
    direction: Direction
    tasks: tuple[TaskKind, ...]
    bounded: bool  # True when the value lies in [0, 1]
    description: str


_BOTH: tuple[TaskKind, ...] = ("classification", "regression")
_CLF: tuple[TaskKind, ...] = ("classification",)
_REG: tuple[TaskKind, ...] = ("regression",)

METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in [
        MetricInfo("accuracy", "maximize", _CLF, True, "share of rows predicted right"),
        MetricInfo("balanced_accuracy", "maximize", _CLF, True, "mean recall over classes"),
        MetricInfo("f1", "maximize", _CLF, True, "F1 of the positive class (binary) or macro F1"),
        MetricInfo("roc_auc", "maximize", _CLF, True, "ROC AUC (one-vs-rest macro for multiclass)"),
        MetricInfo("log_loss", "minimize", _CLF, False, "cross-entropy of predicted probabilities"),
        MetricInfo("ece", "minimize", _CLF, True, "expected calibration error, 10 equal-width bins"),
        MetricInfo("rmse", "minimize", _REG, False, "root mean squared error"),
        MetricInfo("mae", "minimize", _REG, False, "mean absolute error"),
        MetricInfo("r2", "maximize", _REG, False, "coefficient of determination"),
        MetricInfo(
            "demographic_parity_diff",
            "minimize",
            _CLF,
            True,
            "largest gap between groups in the rate of each predicted class",
        ),
        MetricInfo(
            "equalized_odds_diff",
            "minimize",
            _CLF,
            True,
            "largest gap between groups in per-class recall or false-positive rate",
        ),
        MetricInfo(
            "fairness_gap",
            "minimize",
            _BOTH,
            False,
            "classification: max of the two differences above; regression: largest gap in group MAE "
            "divided by overall MAE",
        ),
        MetricInfo("latency_p50_ms", "minimize", _BOTH, False, "median single-row prediction time"),
        MetricInfo("latency_p95_ms", "minimize", _BOTH, False, "95th percentile single-row prediction time"),
        MetricInfo("batch_latency_ms", "minimize", _BOTH, False, "time to predict 1,000 rows in one batch"),
        MetricInfo("model_size_mb", "minimize", _BOTH, False, "size of the serialised model"),
        MetricInfo("train_seconds", "minimize", _BOTH, False, "training wall time"),
        MetricInfo("train_cpu_seconds", "minimize", _BOTH, False, "training CPU time, all threads"),
    ]
}

DEFAULT_PRIMARY: dict[TaskKind, str] = {"classification": "accuracy", "regression": "rmse"}


def metric_names(task: TaskKind | None = None) -> list[str]:
    """Names valid for ``task`` (all names when ``task`` is None), in catalogue order."""
    return [n for n, m in METRICS.items() if task is None or task in m.tasks]
