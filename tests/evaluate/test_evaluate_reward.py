"""The reward model: normalised weighted utilities, constraints, and a ranking with feasible ones first."""

from __future__ import annotations

import math

import numpy as np
import pytest

from darkfab.errors import SpecError
from darkfab.evaluate import RewardModel
from darkfab.spec import Constraint


def _c(metric: str, op: str, value: float) -> Constraint:
    return Constraint(metric=metric, op=op, value=value)  # type: ignore[arg-type]


def test_primary_alone_gets_weight_one() -> None:
    rm = RewardModel(task="classification", primary="accuracy", direction="maximize", weights={}, constraints=[])
    ev = rm.evaluate({"accuracy": 0.9, "f1": 0.1})
    assert ev.reward == pytest.approx(0.9)
    assert ev.value == 0.9 and ev.feasible and ev.violations == ()
    assert ev.breakdown == {"accuracy": {"value": 0.9, "utility": 0.9, "weight": 1.0, "contribution": 0.9}}


def test_weights_are_normalised_and_utilities_follow_the_table() -> None:
    rm = RewardModel(
        task="classification",
        primary="roc_auc",
        direction="maximize",
        weights={"roc_auc": 2.0, "log_loss": 1.0, "ece": 1.0, "latency_p95_ms": 1.0, "model_size_mb": 0.0},
        constraints=[],
        references={"latency_p95_ms": 5.0},
    )
    ev = rm.evaluate({"roc_auc": 0.8, "log_loss": 1.0, "ece": 0.1, "latency_p95_ms": 5.0})
    util = {n: b["utility"] for n, b in ev.breakdown.items()}
    assert util == pytest.approx({"roc_auc": 0.8, "log_loss": 0.5, "ece": 0.9, "latency_p95_ms": 0.5})
    assert sum(b["weight"] for b in ev.breakdown.values()) == pytest.approx(1.0)
    assert ev.reward == pytest.approx((2 * 0.8 + 0.5 + 0.9 + 0.5) / 5)


def test_regression_utilities_use_references() -> None:
    rm = RewardModel(
        task="regression",
        primary="rmse",
        direction="minimize",
        weights={"rmse": 1.0, "r2": 1.0, "train_seconds": 1.0},
        constraints=[],
        references={"rmse": 4.0},
    )
    ev = rm.evaluate({"rmse": 1.0, "r2": 0.5, "train_seconds": 60.0})
    assert ev.breakdown["rmse"]["utility"] == pytest.approx(0.75)
    assert ev.breakdown["train_seconds"]["utility"] == pytest.approx(0.5)
    assert ev.reward == pytest.approx((0.75 + 0.5 + 0.5) / 3)


def test_a_flipped_primary_direction_flips_its_utility() -> None:
    rm = RewardModel(task="classification", primary="accuracy", direction="minimize", weights={}, constraints=[])
    assert rm.evaluate({"accuracy": 0.25}).reward == pytest.approx(0.75)


def test_violations_name_value_and_rule() -> None:
    rm = RewardModel(
        task="classification",
        primary="accuracy",
        direction="maximize",
        weights={},
        constraints=[_c("latency_p95_ms", "<=", 20), _c("model_size_mb", "<", 5), _c("f1", ">=", 0.5)],
    )
    ev = rm.evaluate({"accuracy": 0.9, "latency_p95_ms": 31.2, "model_size_mb": 1.0})
    assert not ev.feasible
    assert ev.violations == (
        "latency_p95_ms = 31.2 breaks latency_p95_ms <= 20",
        "f1 is missing, so f1 >= 0.5 cannot be checked",
    )
    assert ev.violation > (31.2 - 20) / 20


def test_missing_or_nan_weighted_metric_is_infeasible() -> None:
    rm = RewardModel(
        task="classification", primary="roc_auc", direction="maximize", weights={"accuracy": 1}, constraints=[]
    )
    ev = rm.evaluate({"roc_auc": math.nan, "accuracy": 0.5})
    assert not ev.feasible
    assert ev.violations == ("roc_auc is NaN, but it is weighted in the reward",)
    assert math.isnan(ev.value) and ev.reward == pytest.approx(0.25)
    assert "is missing" in rm.evaluate({"roc_auc": 0.5}).violations[0]


def test_rank_key_puts_every_feasible_candidate_first() -> None:
    rm = RewardModel(
        task="classification",
        primary="accuracy",
        direction="maximize",
        weights={"log_loss": 0.5},
        constraints=[_c("latency_p95_ms", "<=", 10), _c("model_size_mb", "<=", 50)],
    )
    rng = np.random.default_rng(0)
    evals = [
        rm.evaluate(
            {
                "accuracy": float(rng.uniform()),
                "log_loss": float(rng.uniform(0, 3)),
                "latency_p95_ms": float(rng.uniform(0, 20)),
                "model_size_mb": float(rng.uniform(0, 80)),
            }
        )
        for _ in range(300)
    ]
    evals.append(rm.evaluate({"accuracy": 1.0, "log_loss": 0.0}))  # missing constraint metrics
    ranked = sorted(evals, key=lambda e: e.rank_key, reverse=True)
    n_feasible = sum(e.feasible for e in evals)
    assert 0 < n_feasible < len(evals)
    assert all(e.feasible for e in ranked[:n_feasible])
    assert not any(e.feasible for e in ranked[n_feasible:])
    feasible_rewards = [e.reward for e in ranked[:n_feasible]]
    assert feasible_rewards == sorted(feasible_rewards, reverse=True)
    violations = [e.violation for e in ranked[n_feasible:]]
    assert violations == sorted(violations)
    assert ranked[-1].metrics == {"accuracy": 1.0, "log_loss": 0.0}  # missing counts worst


def test_strict_bound_met_with_equality_is_a_violation() -> None:
    rm = RewardModel(
        task="regression", primary="rmse", direction="minimize", weights={}, constraints=[_c("mae", "<", 1)]
    )
    ev = rm.evaluate({"rmse": 1.0, "mae": 1.0})
    assert not ev.feasible and ev.violation > 0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"primary": "rmse"}, "not a classification metric"),
        ({"weights": {"latency": 1.0}}, "objective.weights names 'latency'"),
        ({"weights": {"accuracy": 0.0}}, "add up to 0"),
        ({"weights": {"f1": -1.0}}, "must be a finite number >= 0"),
        ({"constraints": [Constraint(metric="r2", op=">=", value=0.1)]}, "constraint r2 >= 0.1"),
        ({"references": {"latency_p95_ms": 0.0}}, "must be a finite number > 0"),
    ],
)
def test_bad_settings_are_spec_errors(kwargs: dict, match: str) -> None:
    base = {
        "task": "classification",
        "primary": "accuracy",
        "direction": "maximize",
        "weights": {},
        "constraints": [],
    }
    with pytest.raises(SpecError, match=match):
        RewardModel(**{**base, **kwargs})
