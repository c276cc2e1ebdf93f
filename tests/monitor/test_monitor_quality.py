"""Live quality from labels: the metric, its direction, and the decay verdict."""

from __future__ import annotations

import math

import pytest

from darkfab.monitor import assess_quality, live_score


def test_classification_accuracy_against_the_champion() -> None:
    labels = ["a"] * 8 + ["b"] * 2
    preds = ["a"] * 6 + ["b"] * 4
    q = assess_quality(
        labels,
        preds,
        task="classification",
        champion_metric="accuracy",
        champion_score=0.9,
        quality_drop=0.05,
        min_labels=5,
    )
    assert q.value == pytest.approx(0.8) and q.drop == pytest.approx(0.1) and q.decayed


def test_regression_rmse_counts_a_rise_as_a_drop() -> None:
    q = assess_quality(
        [1.0, 2.0, 3.0, 4.0],
        [1.0, 2.0, 3.0, 6.0],
        task="regression",
        champion_metric="rmse",
        champion_score=0.5,
        quality_drop=0.4,
        min_labels=1,
    )
    assert q.metric == "rmse" and q.value == pytest.approx(1.0)
    assert q.drop == pytest.approx(0.5) and q.decayed


def test_too_few_labels_or_no_limit_never_decay() -> None:
    few = assess_quality(
        [1, 0],
        [0, 1],
        task="classification",
        champion_metric="accuracy",
        champion_score=1.0,
        quality_drop=0.1,
        min_labels=20,
    )
    assert few.value == 0.0 and not few.decayed
    unlimited = assess_quality(
        [1] * 30, [0] * 30, task="classification", champion_metric="accuracy", champion_score=1.0
    )
    assert unlimited.drop == 1.0 and not unlimited.decayed


def test_a_metric_that_needs_probabilities_falls_back_and_is_not_compared() -> None:
    q = assess_quality(
        ["x", "y"],
        ["x", "x"],
        task="classification",
        champion_metric="roc_auc",
        champion_score=0.99,
        quality_drop=0.01,
        min_labels=1,
    )
    assert q.metric == "accuracy" and q.champion is None and q.drop is None and not q.decayed
    empty = assess_quality([], [], task="regression")
    assert empty.value is None and empty.labelled == 0 and "no live rmse" in empty.describe()


def test_live_scores() -> None:
    assert live_score([1, 2, 3], [1, 2, 5], "mae") == pytest.approx(2 / 3)
    assert live_score([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], "r2") == 1.0
    assert live_score(["a", "a", "b", "b"], ["a", "a", "a", "b"], "balanced_accuracy") == pytest.approx(0.75)
    assert math.isnan(live_score([], [], "accuracy"))
    with pytest.raises(ValueError, match="live quality is computed for"):
        live_score([1], [1], "roc_auc")
