"""Model variants for the serving tests: a champion's model refitted, made to fail, or made to be wrong;
and :func:`register_copy`, which registers such a variant as a new version.

Each helper takes the bytes of a registered darkfab model and returns the bytes of a new one, ready for
``Registry.register``; the wrapped estimators are importable, so the server can unpickle them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from darkfab.registry import Registry
from darkfab.store import ModelVersionRecord
from darkfab.train import load_model


class RaisesAbove(ClassifierMixin, BaseEstimator):
    """Delegates to ``inner`` but raises when a preprocessed value in ``column`` is above ``limit``."""

    def __init__(self, inner: Any = None, column: int = 0, limit: float = 3.0) -> None:
        self.inner = inner
        self.column = column
        self.limit = limit

    @property
    def classes_(self) -> np.ndarray:
        return self.inner.classes_

    def _check(self, X: np.ndarray) -> None:
        if np.any(np.asarray(X)[:, self.column] > self.limit):
            raise ValueError(f"RaisesAbove: a value in column {self.column} is above {self.limit}")

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        self._check(X)
        return self.inner.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        self._check(X)
        return self.inner.predict(X)


class Inverted(ClassifierMixin, BaseEstimator):
    """Delegates to ``inner`` with the class probabilities reversed: as wrong as ``inner`` is right."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner

    @property
    def classes_(self) -> np.ndarray:
        return self.inner.classes_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.inner.predict_proba(X))[:, ::-1]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def _with_estimator(blob: bytes, make: Any) -> bytes:
    model = load_model(blob)
    model.estimator = make(model.estimator)
    return model.to_bytes()


def raising(blob: bytes, *, column: int = 0, limit: float = 3.0) -> bytes:
    """The model of ``blob``, failing on rows whose preprocessed ``column`` exceeds ``limit``."""
    return _with_estimator(blob, lambda est: RaisesAbove(est, column, limit))


def inverted(blob: bytes) -> bytes:
    """The model of ``blob`` answering the other class (binary classification)."""
    return _with_estimator(blob, Inverted)


def refitted(blob: bytes, frame: pd.DataFrame, target: str, **params: Any) -> bytes:
    """The model of ``blob`` with its estimator refitted on ``frame`` under other ``params`` (a real, new model)."""
    model = load_model(blob)
    X = model.prep.transform(frame[list(model.features)])
    index = {c: i for i, c in enumerate(model.classes)}
    y = np.asarray([index[v] for v in frame[target]])
    model.estimator = clone(model.estimator).set_params(**params).fit(X, y)
    model.params = {**model.params, **params}
    return model.to_bytes()


def register_copy(
    registry: Registry,
    factory: str,
    of: ModelVersionRecord,
    blob: bytes,
    *,
    reason: str,
    aliases: tuple[str, ...] = (),
    lineage: dict[str, Any] | None = None,
) -> ModelVersionRecord:
    """``blob`` registered as a new version of ``factory`` that claims ``of``'s trial, trainer, params and
    metrics; its lineage names ``of`` as its parent unless ``lineage`` is given."""
    return registry.register(
        factory,
        blob,
        trial_id=of.trial_id,
        trainer=of.trainer,
        params=of.params,
        metrics=of.metrics,
        lineage={"parents": [of.version]} if lineage is None else lineage,
        aliases=aliases,
        reason=reason,
    )
