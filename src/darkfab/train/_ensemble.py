"""Greedy ensemble selection (Caruana et al., 2004) over the search's own candidates, and the model it makes.

Members are picked one at a time, with replacement, each time the one whose addition to the running average
scores best on rows none of them was fitted on; a member picked k times weighs k / rounds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ._model import DarkfabModel

ROUNDS = 25


def greedy_weights(
    predictions: Sequence[np.ndarray],
    score: Callable[[np.ndarray], float],
    *,
    maximize: bool,
    rounds: int = ROUNDS,
) -> list[float]:
    """Weights (summing to 1) of the members ``predictions`` picked greedily by ``score`` of their average,
    as they stood after the best-scoring round (the first round picks the best single member)."""
    if not predictions:
        return []
    sign = 1.0 if maximize else -1.0
    counts = [0] * len(predictions)
    total: np.ndarray | None = None
    kept, kept_score = list(counts), -np.inf
    for r in range(1, rounds + 1):
        best_i, best_s = 0, -np.inf
        for i, p in enumerate(predictions):
            average = p if total is None else (total + p) / r  # total holds the sum of the r - 1 picks so far
            s = sign * score(average)
            if s > best_s + 1e-12:
                best_i, best_s = i, s
        counts[best_i] += 1
        total = predictions[best_i].astype(float) if total is None else total + predictions[best_i]
        if best_s > kept_score + 1e-12:  # the best round wins, so the ensemble never scores below its best member
            kept, kept_score = list(counts), best_s
    n = sum(kept)
    return [c / n for c in kept]


class EnsembleModel(DarkfabModel):
    """A weighted average of registered-model members' raw answers (probabilities, or values)."""

    def __init__(self, members: Sequence[DarkfabModel], weights: Sequence[float]) -> None:
        first = members[0]
        super().__init__(
            task=first.task,
            features=first.features,
            feature_types=first.feature_types,
            classes=first.classes,
            prep=first.prep,
            estimator=None,
            trainer="ensemble",
            params={"members": [m.trainer for m in members], "weights": list(weights)},
        )
        self.members = list(members)
        self.weights = [float(w) for w in weights]

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        raise TypeError("an ensemble's members preprocess the raw rows each their own way; call predict_raw")

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        out: Any = None
        for member, weight in zip(self.members, self.weights, strict=True):
            part = weight * member.predict_raw(frame)
            out = part if out is None else out + part
        return np.asarray(out, dtype=float)
