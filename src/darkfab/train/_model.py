"""The registered model: preprocessing, the fitted estimator, and how to decode its answers."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd

from ..spec import TaskKind
from ._prep import Preprocessor


def to_all_classes(proba: np.ndarray, seen: Any, n_classes: int) -> np.ndarray:
    """Probabilities over the task's ``n_classes`` classes from a model that saw only the classes ``seen``.

    A model fitted on rows that hold some classes only (a small split, a fold, a rare class) has one column
    per class it saw, in the order of ``seen`` (the task's class codes); the classes it never saw get
    probability 0, so every prediction lines up with the task's full, encoded class list.
    """
    proba = np.asarray(proba, dtype=float)
    if proba.ndim == 1:  # one probability: of the second of the two classes seen
        proba = np.column_stack([1.0 - proba, proba])
    codes = np.asarray(seen).astype(np.int64).reshape(-1)
    if proba.shape[1] == n_classes and np.array_equal(codes, np.arange(n_classes)):
        return proba
    if codes.shape[0] != proba.shape[1] or codes.min(initial=0) < 0 or codes.max(initial=0) >= n_classes:
        raise ValueError(
            f"the model returned {proba.shape[1]} probability columns for the classes {codes.tolist()[:10]}, "
            f"which cannot be placed among the task's {n_classes} classes"
        )
    full = np.zeros((proba.shape[0], n_classes))
    full[:, codes] = proba
    return full


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
        proba = np.asarray(self.estimator.predict_proba(X), dtype=float)
        seen = getattr(self.estimator, "classes_", np.arange(proba.shape[1]))
        return to_all_classes(proba, seen, len(self.classes))

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
