"""A built-in portfolio of strong default configurations per trainer and task, tried before the search.

Each entry sets every parameter of the trainer's built-in space: the library's own defaults first (they
are good on most tabular data), then one or two settings known to do well more often than not (lower
learning rate with more rounds and row/column subsampling for boosting; full-depth forests). An entry that
does not fit a factory's own space is left out by the proposer.
"""

from __future__ import annotations

from typing import Any

from ..spec import TaskKind, TrainerSpec

_LGBM = [
    {"n_estimators": 100, "learning_rate": 0.1, "num_leaves": 31, "min_child_samples": 20,
     "subsample": 1.0, "colsample_bytree": 1.0, "reg_lambda": 1e-8},
    {"n_estimators": 300, "learning_rate": 0.05, "num_leaves": 16, "min_child_samples": 10,
     "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1.0},
    {"n_estimators": 500, "learning_rate": 0.03, "num_leaves": 31, "min_child_samples": 20,
     "subsample": 0.7, "colsample_bytree": 0.5, "reg_lambda": 0.1},
]  # fmt: skip
_XGB = [
    {"n_estimators": 100, "learning_rate": 0.3, "max_depth": 6, "min_child_weight": 1.0,
     "subsample": 1.0, "colsample_bytree": 1.0, "reg_lambda": 1.0},
    {"n_estimators": 300, "learning_rate": 0.05, "max_depth": 4, "min_child_weight": 1.0,
     "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1.0},
]  # fmt: skip
_HGB = [
    {"learning_rate": 0.1, "max_iter": 100, "max_leaf_nodes": 31, "min_samples_leaf": 20, "l2_regularization": 1e-8},
]

PORTFOLIO: dict[str, dict[TaskKind, list[dict[str, Any]]]] = {
    "lightgbm": {"classification": _LGBM, "regression": _LGBM},
    "xgboost": {"classification": _XGB, "regression": _XGB},
    "gradient_boosting": {"classification": _HGB, "regression": _HGB},
    "random_forest": {
        "classification": [{"n_estimators": 300, "max_depth": 30, "min_samples_leaf": 1, "max_features": 0.3}],
        "regression": [{"n_estimators": 300, "max_depth": 30, "min_samples_leaf": 1, "max_features": 1.0}],
    },
    "extra_trees": {
        "classification": [{"n_estimators": 300, "max_depth": 30, "min_samples_leaf": 1, "max_features": 0.5}],
        "regression": [{"n_estimators": 300, "max_depth": 30, "min_samples_leaf": 1, "max_features": 1.0}],
    },
    "logistic_regression": {"classification": [{"C": 1.0}]},
    "linear_regression": {"regression": [{"alpha": 1.0}]},
    "svm": {
        "classification": [{"C": 1.0, "gamma_factor": 1.0, "scaling": "standard"}],
        "regression": [{"C": 1.0, "gamma_factor": 1.0, "scaling": "standard", "epsilon": 0.1}],
    },
    "knn": {
        "classification": [{"n_neighbors": 10, "weights": "distance", "scaling": "standard"}],
        "regression": [{"n_neighbors": 10, "weights": "distance", "scaling": "standard"}],
    },
}


def portfolio_configs(trainers: list[TrainerSpec], task: TaskKind) -> tuple[tuple[str, dict[str, Any]], ...]:
    """(trainer, params) pairs to try first, interleaved across the trainers: every trainer's library
    defaults before any trainer's second setting, so a short budget still sees each family once."""
    lists = [
        [(t.name, {**cfg, **t.params}) for cfg in PORTFOLIO.get(t.name, {}).get(task, [])]
        for t in trainers
        if t.script is None and t.estimator is None
    ]
    out: list[tuple[str, dict[str, Any]]] = []
    for rank in range(max((len(x) for x in lists), default=0)):
        out.extend(x[rank] for x in lists if rank < len(x))
    return tuple(out)
