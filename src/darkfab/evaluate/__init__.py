"""Evaluate: the metrics suite, the reward model and the sealed-test gate.

The factory, never the candidate, computes metrics: labels stay in the factory's process.
"""

from __future__ import annotations

from ._custom import CustomMetric, load_custom_metrics
from ._cv import cross_validated
from ._first import (
    ONE_SD_LEVEL,
    WEAK_SEALED_ROWS,
    HeldOutEvidence,
    SearchEvidence,
    first_champion,
    held_out_evidence,
    search_evidence,
)
from ._gate import (
    GateVerdict,
    ScoreCI,
    baseline_predictions,
    bootstrap_indices,
    bootstrap_scores,
    gate,
    score_with_ci,
)
from ._learned import (
    Comparison,
    LearnedReward,
    RewardJudgement,
    choose_pair,
    features_for,
    fit_preferences,
    judge_learned,
    kendall_tau,
    utilities,
)
from ._metrics import (
    PREDICTION_METRICS,
    GroupCodes,
    as_probabilities,
    compute_metrics,
    encode_groups,
    metric_value,
    predicted_labels,
)
from ._reward import DEFAULT_REFERENCES, MISSING_PENALTY, Evaluation, RewardModel
from ._select import Answers, Flagged, Screening, Selection, best_first_key, select_candidate
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
    "ONE_SD_LEVEL",
    "PREDICTION_METRICS",
    "WEAK_SEALED_ROWS",
    "Answers",
    "Comparison",
    "CustomMetric",
    "Evaluation",
    "Flagged",
    "GateVerdict",
    "GroupCodes",
    "HeldOutEvidence",
    "LearnedReward",
    "RewardJudgement",
    "RewardModel",
    "ScoreCI",
    "Screening",
    "SearchEvidence",
    "Selection",
    "Suspicion",
    "as_probabilities",
    "baseline_predictions",
    "best_first_key",
    "bootstrap_indices",
    "bootstrap_scores",
    "choose_pair",
    "compute_metrics",
    "cross_validated",
    "encode_groups",
    "features_for",
    "first_champion",
    "fit_preferences",
    "gate",
    "held_out_evidence",
    "judge_learned",
    "kendall_tau",
    "leaky_features",
    "load_custom_metrics",
    "memorization",
    "metric_value",
    "predicted_labels",
    "score_with_ci",
    "search_evidence",
    "select_candidate",
    "suspicions",
    "too_good_on_validation",
    "utilities",
    "validation_far_above_test",
]
