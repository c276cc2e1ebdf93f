"""The learned reward: a scripted oracle person whose utility differs from the declared weights.

The candidates are drawn like a search's trials (accuracy, F1, model size over four orders of magnitude,
latency); the oracle cares mostly about size. darkfab's own pair selection must teach the learned reward
the oracle's order (Kendall tau >= 0.8 on held-out candidates) within 30 answers, where the declared
reward (accuracy only) ranks them below 0.3 and random pairs teach clearly less.
"""

from __future__ import annotations

import numpy as np
import pytest

from darkfab.evaluate import RewardModel, choose_pair, features_for, fit_preferences, judge_learned, kendall_tau
from darkfab.spec import Constraint
from darkfab.testing.oracle import DECLARED, candidates, oracle, tau, teach


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chosen_pairs_teach_the_oracles_order_within_30_answers(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pool, held = candidates(rng, 40), candidates(rng, 40)
    declared_tau = kendall_tau([DECLARED.evaluate(h).reward for h in held], [oracle(h) for h in held])
    assert declared_tau < 0.3
    active = teach(pool, 30, active=True, seed=seed)
    assert tau(active, pool, held) >= 0.8
    # the same number of random pairs teaches clearly less (averaged over a few draws of pairs)
    random_taus = [tau(teach(pool, 30, active=False, seed=seed * 10 + k), pool, held) for k in range(3)]
    assert np.mean(random_taus) < tau(active, pool, held) - 0.05
    # and the learned reward earns its place: it beats the declared weights on held-out preferences
    judgement, model = judge_learned(DECLARED, active, by_source={"person": 30})
    assert judgement.passed, judgement.reason
    assert judgement.learned_agreement >= judgement.declared_agreement + 0.1
    assert judgement.weights_after["model_size_mb"] > judgement.weights_before.get("model_size_mb", 0.0)


def test_no_preferences_means_the_declared_reward() -> None:
    rng = np.random.default_rng(5)
    pool = candidates(rng, 20)
    judgement, _ = judge_learned(DECLARED, [])
    assert not judgement.passed and judgement.weights_after == judgement.weights_before == {"accuracy": 1.0}
    features = features_for(DECLARED, pool)
    prior = fit_preferences(DECLARED, [], features)
    assert prior.weights == {"accuracy": 1.0}


def test_few_preferences_never_replace_the_declared_reward() -> None:
    rng = np.random.default_rng(6)
    pool = candidates(rng, 20)
    comps = teach(pool, 4, active=True, seed=6)
    judgement, _ = judge_learned(DECLARED, comps)
    assert not judgement.passed and "at least" in judgement.reason


def test_no_preference_makes_an_infeasible_candidate_win() -> None:
    rng = np.random.default_rng(7)
    pool = candidates(rng, 40)
    constrained = RewardModel(
        task="classification",
        primary="accuracy",
        direction="maximize",
        weights={},
        constraints=[Constraint(metric="accuracy", op=">=", value=0.9)],
    )
    comps = teach(pool, 30, active=True, seed=7)
    judgement, _ = judge_learned(constrained, comps)
    learned = RewardModel(
        task="classification",
        primary="accuracy",
        direction="maximize",
        weights=judgement.weights_after,
        constraints=constrained.constraints,
    )
    ranked = sorted(pool, key=lambda m: learned.evaluate(m).rank_key, reverse=True)
    feasible = [m for m in pool if m["accuracy"] >= 0.9]
    assert all(m["accuracy"] >= 0.9 for m in ranked[: len(feasible)])
    # pair selection never asks about an infeasible candidate
    features = features_for(constrained, pool)
    pair = choose_pair(constrained, fit_preferences(constrained, comps, features), pool, set())
    assert pair is not None and all(pool[i]["accuracy"] >= 0.9 for i in pair)
