"""Evaluate: the metrics suite, the reward model and the sealed-test gate.

The factory, never the candidate, computes metrics: labels stay in the factory's process.
"""

from __future__ import annotations

from ._gate import (
    GateVerdict,
    ScoreCI,
    baseline_predictions,
    bootstrap_indices,
    bootstrap_scores,
    gate,
    score_with_ci,
)
from ._metrics import (
    PREDICTION_METRICS,
    GroupCodes,
    as_probabilities,
    compute_metrics,
    encode_groups,
    predicted_labels,
)
from ._reward import DEFAULT_REFERENCES, MISSING_PENALTY, Evaluation, RewardModel
from ._suspicion import (
    Suspicion,
    leaky_features,
    memorization,
    suspicions,
    too_good_on_validation,
    validation_far_above_test,
)

__all__ = [
    "DEFAULT_REFERENCES",
    "MISSING_PENALTY",
    "PREDICTION_METRICS",
    "Evaluation",
    "GateVerdict",
    "GroupCodes",
    "RewardModel",
    "ScoreCI",
    "Suspicion",
    "as_probabilities",
    "baseline_predictions",
    "bootstrap_indices",
    "bootstrap_scores",
    "compute_metrics",
    "encode_groups",
    "gate",
    "leaky_features",
    "memorization",
    "predicted_labels",
    "score_with_ci",
    "suspicions",
    "too_good_on_validation",
    "validation_far_above_test",
]
