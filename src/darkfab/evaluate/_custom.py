"""Metrics of the user's own: ``objective.metrics`` names a function by import path.

The factory calls it in its own process, like the built-in metrics, as ``fn(y_true, y_pred)``:
``y_true`` holds the encoded class indices ``0..n_classes-1`` (classification) or the float targets,
``y_pred`` the predicted class indices, the ``(n, n_classes)`` probability matrix when ``proba: true``, or
the predicted values. It returns one number; NaN is allowed (it counts as missing, like a NaN ROC AUC).
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SpecError
from ..spec import CustomMetricSpec, Direction, TaskKind


@dataclass(frozen=True)
class CustomMetric:
    """One loaded custom metric."""

    name: str
    function: str
    direction: Direction
    fn: Callable[..., Any]
    proba: bool = False

    def y_pred(self, task: TaskKind, predictions: Any) -> np.ndarray:
        """What the function receives as ``y_pred`` for these predictions."""
        p = np.asarray(predictions, dtype=float)
        if task == "regression":
            return p.reshape(-1)
        if p.ndim == 1:
            p = np.column_stack([1.0 - p, p])
        return p if self.proba else np.argmax(p, axis=1)

    def value(self, y_true: Any, y_pred: np.ndarray) -> float:
        """The function's value on these rows, checked to be a number."""
        try:
            out = self.fn(np.asarray(y_true), y_pred)
        except Exception as exc:  # the user's code: any failure becomes one clear error
            raise SpecError(
                f"objective.metrics.{self.name}: {self.function} raised {type(exc).__name__}: {exc}; "
                "fix: the function must take (y_true, y_pred, sample_weight=None) and return a float"
            ) from None
        try:
            value = float(out)
        except (TypeError, ValueError):
            raise SpecError(
                f"objective.metrics.{self.name}: {self.function} returned {type(out).__name__} {out!r:.80}, "
                "not a number; fix: return one float"
            ) from None
        return value if math.isfinite(value) else math.nan

    def __call__(self, task: TaskKind, y_true: Any, predictions: Any) -> float:
        return self.value(y_true, self.y_pred(task, predictions))


def _import(name: str, spec: CustomMetricSpec) -> Callable[..., Any]:
    module_name, _, attr = spec.function.partition(":")
    added = spec.folder is not None and spec.folder not in sys.path
    if added:
        sys.path.append(str(spec.folder))
    try:
        module = importlib.import_module(module_name)
        fn = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        where = f" or in {spec.folder}" if spec.folder else ""
        raise SpecError(
            f"objective.metrics.{name}: cannot import {spec.function!r} ({exc}); fix: put the module on the "
            f"import path{where}, and check the function name"
        ) from None
    finally:
        if added:
            sys.path.remove(str(spec.folder))
    if not callable(fn):
        raise SpecError(f"objective.metrics.{name}: {spec.function!r} is not a function; fix: name a function")
    return fn


def load_custom_metrics(specs: Mapping[str, CustomMetricSpec]) -> dict[str, CustomMetric]:
    """Import every custom metric a factory file declares. Raises SpecError naming the one that fails."""
    return {
        name: CustomMetric(name=name, function=s.function, direction=s.direction, fn=_import(name, s), proba=s.proba)
        for name, s in specs.items()
    }
