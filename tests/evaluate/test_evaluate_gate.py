"""The bootstrap gate: paired resamples, vectorised scores equal to per-resample metrics, clear reasons."""

from __future__ import annotations

import math

import numpy as np
import pytest

from darkfab.errors import SpecError
from darkfab.evaluate import (
    PREDICTION_METRICS,
    baseline_predictions,
    bootstrap_indices,
    bootstrap_scores,
    compute_metrics,
    gate,
    score_with_ci,
)


def _clf(seed: int, n: int = 400, k: int = 3, skill: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += skill
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


CLF_METRICS = PREDICTION_METRICS["classification"]  # every metric the gate accepts for a classifier


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("metric", CLF_METRICS)
def test_vectorised_bootstrap_equals_metrics_of_each_resample(metric: str, k: int) -> None:
    y, p = _clf(1, n=120, k=k)
    groups = np.random.default_rng(2).choice(["a", "b"], 120)
    scores = bootstrap_scores("classification", metric, y, p, n_boot=15, seed=3, groups=groups)
    idx = bootstrap_indices(120, 15, 3)
    expected = [compute_metrics("classification", y[r], p[r], n_classes=k, groups=groups[r])[metric] for r in idx]
    np.testing.assert_allclose(scores, expected, atol=1e-12)


@pytest.mark.parametrize("metric", ["rmse", "mae", "r2", "fairness_gap"])
def test_regression_bootstrap_equals_metrics_of_each_resample(metric: str) -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=100)
    pred = y + rng.normal(size=100)
    groups = rng.integers(0, 3, 100)
    scores = bootstrap_scores("regression", metric, y, pred, n_boot=10, seed=1, groups=groups)
    idx = bootstrap_indices(100, 10, 1)
    expected = [compute_metrics("regression", y[r], pred[r], n_classes=0, groups=groups[r])[metric] for r in idx]
    np.testing.assert_allclose(scores, expected, atol=1e-12)


def test_score_with_ci_brackets_the_score() -> None:
    y, p = _clf(0)
    ci = score_with_ci("classification", "accuracy", y, p, n_boot=500, seed=0)
    assert ci.score == compute_metrics("classification", y, p, n_classes=3)["accuracy"]
    assert ci.low < ci.score < ci.high
    wider = score_with_ci("classification", "accuracy", y, p, n_boot=500, seed=0, level=0.99)
    assert wider.low <= ci.low and wider.high >= ci.high


def test_a_clearly_better_candidate_passes() -> None:
    y, good = _clf(0, skill=3.0)
    champion = baseline_predictions("classification", y, len(y), n_classes=3)
    v = gate(
        task="classification",
        metric="accuracy",
        direction="maximize",
        y_true=y,
        candidate=good,
        champion=champion,
        min_improvement=0.05,
        confidence=0.9,
        n_boot=1000,
        seed=0,
    )
    assert v.passed and v.p_better >= 0.9 and v.delta > 0.05
    assert v.delta_low <= v.delta <= v.delta_high
    assert v.reason.startswith("candidate accuracy ")
    assert "beats champion" in v.reason and ">= 0.90" in v.reason


def test_an_equal_candidate_does_not_pass() -> None:
    y, p = _clf(0)
    v = gate(
        task="classification",
        metric="accuracy",
        direction="maximize",
        y_true=y,
        candidate=p,
        champion=p.copy(),
        min_improvement=0.0,
        confidence=0.9,
        n_boot=300,
        seed=0,
    )
    assert not v.passed and v.delta == 0.0 and v.p_better == 0.0
    assert "does not beat champion" in v.reason and "< 0.90" in v.reason


def test_the_bootstrap_is_paired() -> None:
    # The candidate fixes 12 of the champion's errors and changes nothing else: a small gain that a paired
    # bootstrap sees clearly (every resample gains or ties) while unpaired intervals overlap.
    y, champ = _clf(4, skill=1.0)
    wrong = np.flatnonzero(champ.argmax(axis=1) != y)[:12]
    cand = champ.copy()
    cand[wrong] = 0.0
    cand[wrong, y[wrong]] = 1.0
    v = gate(
        task="classification",
        metric="accuracy",
        direction="maximize",
        y_true=y,
        candidate=cand,
        champion=champ,
        min_improvement=0.0,
        confidence=0.95,
        n_boot=1000,
        seed=0,
    )
    assert v.passed and v.delta == pytest.approx(12 / len(y))
    assert v.delta_low > 0  # never worse in any resample
    assert v.champion is not None and v.candidate.low < v.champion.high  # the unpaired intervals overlap
    unpaired = bootstrap_scores("classification", "accuracy", y, cand, n_boot=1000, seed=1) - bootstrap_scores(
        "classification", "accuracy", y, champ, n_boot=1000, seed=2
    )
    assert np.mean(unpaired > 0) < v.p_better


def test_minimising_metrics_count_a_drop_as_a_gain() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=400)
    better = y + rng.normal(0, 0.5, 400)
    worse = y + rng.normal(0, 1.0, 400)
    v = gate(
        task="regression",
        metric="rmse",
        direction="minimize",
        y_true=y,
        candidate=better,
        champion=worse,
        min_improvement=0.0,
        confidence=0.9,
        n_boot=500,
        seed=0,
    )
    assert v.passed and v.delta > 0
    assert v.champion is not None and v.delta == pytest.approx(v.champion.score - v.candidate.score)


def test_no_champion_passes_a_finite_candidate() -> None:
    y, p = _clf(0)
    v = gate(
        task="classification",
        metric="roc_auc",
        direction="maximize",
        y_true=y,
        candidate=p,
        champion=None,
        min_improvement=0.0,
        confidence=0.9,
        n_boot=100,
        seed=0,
    )
    assert v.passed and v.champion is None and math.isnan(v.delta)
    assert v.reason.startswith("no champion existed; candidate roc_auc")


def test_same_seed_same_verdict() -> None:
    y, p = _clf(0)
    _, q = _clf(1)
    kw = dict(task="classification", metric="f1", direction="maximize", y_true=y, min_improvement=0.0)
    a = gate(**kw, candidate=p, champion=q, confidence=0.9, n_boot=200, seed=5)  # type: ignore[arg-type]
    b = gate(**kw, candidate=p, champion=q, confidence=0.9, n_boot=200, seed=5)  # type: ignore[arg-type]
    assert a == b


def test_metrics_that_predictions_do_not_determine_are_refused() -> None:
    y, p = _clf(0)
    with pytest.raises(SpecError, match="cannot be bootstrapped"):
        bootstrap_scores("classification", "latency_p95_ms", y, p, n_boot=10, seed=0)
    with pytest.raises(SpecError, match="needs the group of each row"):
        bootstrap_scores("classification", "fairness_gap", y, p, n_boot=10, seed=0)
    with pytest.raises(SpecError, match="confidence must lie strictly between 0 and 1"):
        gate(
            task="classification",
            metric="accuracy",
            direction="maximize",
            y_true=y,
            candidate=p,
            champion=p,
            min_improvement=0.0,
            confidence=1.0,
            n_boot=10,
            seed=0,
        )


@pytest.mark.parametrize("k", [2, 5])
def test_bootstrap_roc_auc_with_ties_and_a_missing_class(k: int) -> None:
    y, p = _clf(7, n=90, k=k, skill=0.5)
    if k > 2:
        y[y == k - 1] = 0
    p = np.round(p, 1) + 1e-3
    p /= p.sum(axis=1, keepdims=True)
    scores = bootstrap_scores("classification", "roc_auc", y, p, n_boot=25, seed=0)
    idx = bootstrap_indices(90, 25, 0)
    expected = [compute_metrics("classification", y[r], p[r], n_classes=k)["roc_auc"] for r in idx]
    np.testing.assert_allclose(scores, expected, atol=1e-12)


def test_bootstrap_roc_auc_is_nan_for_a_one_class_resample() -> None:
    y = np.array([0] * 9 + [1])
    p = np.column_stack([np.linspace(0.9, 0.1, 10), np.linspace(0.1, 0.9, 10)])
    scores = bootstrap_scores("classification", "roc_auc", y, p, n_boot=200, seed=0)
    idx = bootstrap_indices(10, 200, 0)
    one_class = ~(y[idx] == 1).any(axis=1)
    assert one_class.any() and np.isnan(scores[one_class]).all() and np.isfinite(scores[~one_class]).all()
