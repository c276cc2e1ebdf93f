"""The registered model: preprocessing, the fitted estimator, and how to decode its answers."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd

from ..spec import TaskKind
from ._prep import Preprocessor


class DarkfabModel:
    """Raw rows in (the training columns, minus the target), predictions in the target's own labels out."""

    def __init__(
        self,
        *,
        task: TaskKind,
        features: tuple[str, ...],
        feature_types: dict[str, str],
        classes: tuple[Any, ...],
        prep: Preprocessor,
        estimator: Any,
        trainer: str,
        params: dict[str, Any],
    ) -> None:
        self.task = task
        self.features = features
        self.feature_types = feature_types
        self.classes = classes
        self.prep = prep
        self.estimator = estimator
        self.trainer = trainer
        self.params = params

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """Predictions from an already preprocessed matrix: probabilities (n, k) or values (n,)."""
        if self.task == "regression":
            return np.asarray(self.estimator.predict(X), dtype=float).reshape(-1)
        k = len(self.classes)
        proba = np.asarray(self.estimator.predict_proba(X), dtype=float)
        seen = np.asarray(getattr(self.estimator, "classes_", np.arange(proba.shape[1]))).astype(int)
        if proba.shape[1] == k and np.array_equal(seen, np.arange(k)):
            return proba
        full = np.zeros((proba.shape[0], k))
        full[:, seen] = proba
        return full

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_matrix(self.prep.transform(frame))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        if self.task == "regression":
            raise TypeError("predict_proba is for classification models; this one is a regression model")
        return self.predict_raw(frame)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        raw = self.predict_raw(frame)
        if self.task == "regression":
            return raw
        return np.asarray(self.classes, dtype=object)[raw.argmax(axis=1)]

    def to_bytes(self) -> bytes:
        return pickle.dumps(self, protocol=5)


def load_model(data: bytes) -> DarkfabModel:
    """Unpickle a model. Only for artifacts whose content hash the registry has verified."""
    model = pickle.loads(data)
    if not isinstance(model, DarkfabModel):
        raise TypeError(f"artifact holds a {type(model).__name__}, not a darkfab model")
    return model
