"""A reward learned from preferences: Bradley-Terry on the candidates' metric utilities.

A preference says that candidate ``a`` beat ``b`` (or that they tie). The model::

    P(a beats b) = sigmoid(theta . (u(a) - u(b)))

where ``u(x)`` is the vector of the reward model's utilities of x's metrics (:meth:`RewardModel.utility`,
"higher is better", about 0..1) and ``theta >= 0`` are the weights. The prior is Gaussian around the
declared weights, scaled by :data:`PRIOR_SCALE` so that the declared reward already orders pairs with some
confidence: with no preferences the learned reward IS the declared one. The fit is the MAP estimate
(bounded L-BFGS); the Laplace approximation gives its covariance, which says how sure the model is of each
pair's order and lets :func:`choose_pair` ask the question whose answer it is least sure of (largest
variance of the pair's logit, weighted by ``p(1 - p)``: an approximation to the expected information gain).

A learned reward replaces the declared one only when it predicts preferences it was not fitted on better:
:func:`judge_learned` scores both by leave-one-out agreement and asks for ``margin`` more. Hard constraints
stay hard: the weights only reorder feasible candidates (:class:`RewardModel` ranks every feasible candidate
above every infeasible one, whatever its weights).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from ._reward import RewardModel

PRIOR_SCALE = 20.0
"""theta's prior mean is the declared weights (summing to 1) times this: a utility gap of 0.05 is ~73%."""
PRIOR_PRECISION = 0.05
"""How strongly theta is pulled back to the prior (per unit of theta squared)."""
MIN_PREFERENCES = 6
"""Fewer preferences than this never replace the declared reward."""


@dataclass(frozen=True)
class Comparison:
    """One answered pair: the metrics of both candidates and who won (``"a"``, ``"b"`` or ``"tie"``)."""

    a: Mapping[str, float]
    b: Mapping[str, float]
    winner: str


@dataclass(frozen=True)
class LearnedReward:
    """The fitted weights (normalised to sum 1), the raw ``theta`` and its Laplace covariance."""

    features: tuple[str, ...]
    theta: np.ndarray
    covariance: np.ndarray
    n_preferences: int

    @property
    def weights(self) -> dict[str, float]:
        total = float(self.theta.sum())
        if total <= 0:
            return {}
        return {f: float(t / total) for f, t in zip(self.features, self.theta, strict=True) if t / total > 1e-4}

    def logit(self, diff: np.ndarray) -> float:
        return float(self.theta @ diff)


@dataclass(frozen=True)
class RewardJudgement:
    """Whether a learned reward replaces the declared one, with the figures behind the decision."""

    passed: bool
    learned_agreement: float
    declared_agreement: float
    margin: float
    n_preferences: int
    weights_before: dict[str, float]
    weights_after: dict[str, float]
    reason: str
    by_source: dict[str, int] = field(default_factory=dict)


def features_for(reward: RewardModel, candidates: Sequence[Mapping[str, float]]) -> tuple[str, ...]:
    """The metrics a learned reward may weigh: the declared ones, plus every metric all candidates have."""
    from ..spec import metric_names

    valid = set(metric_names(reward.task))
    shared = set.intersection(*(set(c) for c in candidates)) if candidates else set()
    usable = {
        m for m in shared & valid if all(isinstance(c[m], (int, float)) and math.isfinite(c[m]) for c in candidates)
    }
    return tuple(sorted(usable | set(reward.weights)))


def utilities(reward: RewardModel, features: Sequence[str], metrics: Mapping[str, float]) -> np.ndarray:
    """The candidate's utility per feature; a missing or non-finite metric counts 0 (no evidence)."""
    out = np.zeros(len(features))
    for i, name in enumerate(features):
        x = metrics.get(name)
        if x is None or not math.isfinite(x):
            continue
        u = reward.utility(name, float(x))
        out[i] = u if math.isfinite(u) else 0.0
    return out


def _prior(reward: RewardModel, features: Sequence[str]) -> np.ndarray:
    return np.array([reward.weights.get(f, 0.0) for f in features]) * PRIOR_SCALE


def fit_preferences(reward: RewardModel, comparisons: Sequence[Comparison], features: Sequence[str]) -> LearnedReward:
    """The MAP Bradley-Terry weights for these comparisons, with the declared weights as the prior."""
    prior = _prior(reward, features)
    diffs, targets = [], []
    for c in comparisons:
        d = utilities(reward, features, c.a) - utilities(reward, features, c.b)
        diffs.append(d)
        targets.append({"a": 1.0, "b": 0.0}.get(c.winner, 0.5))
    D = np.array(diffs).reshape(len(diffs), len(features))
    y = np.array(targets)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = D @ theta
        # -log likelihood of y under sigmoid(z), stable for large |z|
        nll = float(np.sum(np.logaddexp(0.0, z) - y * z))
        p = 1.0 / (1.0 + np.exp(-z))
        grad = D.T @ (p - y)
        delta = theta - prior
        return nll + 0.5 * PRIOR_PRECISION * float(delta @ delta), grad + PRIOR_PRECISION * delta

    start = prior.copy() if prior.any() else np.full(len(features), PRIOR_SCALE / max(len(features), 1))
    result = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * len(features))
    theta = np.maximum(result.x, 0.0)
    p = 1.0 / (1.0 + np.exp(-(D @ theta)))
    hessian = (D.T * (p * (1 - p))) @ D + PRIOR_PRECISION * np.eye(len(features))
    return LearnedReward(tuple(features), theta, np.linalg.inv(hessian), len(comparisons))


def choose_pair(
    reward: RewardModel,
    learned: LearnedReward,
    candidates: Sequence[Mapping[str, float]],
    asked: set[tuple[int, int]] = frozenset(),  # type: ignore[assignment]
) -> tuple[int, int] | None:
    """The pair of feasible candidates (indices) whose answer would teach the model most, or None."""
    feasible = [i for i, c in enumerate(candidates) if reward.evaluate(c).feasible]
    U = {i: utilities(reward, learned.features, candidates[i]) for i in feasible}
    best: tuple[float, tuple[int, int]] | None = None
    for x in range(len(feasible)):
        for y in range(x + 1, len(feasible)):
            i, j = feasible[x], feasible[y]
            if (i, j) in asked or (j, i) in asked:
                continue
            d = U[i] - U[j]
            if not d.any():
                continue
            p = 1.0 / (1.0 + math.exp(-learned.logit(d)))
            score = float(d @ learned.covariance @ d) * p * (1 - p)
            if best is None or score > best[0]:
                best = (score, (i, j))
    return None if best is None else best[1]


def _agrees(score_a: float, score_b: float, winner: str) -> float:
    if winner == "tie":
        return 1.0 if math.isclose(score_a, score_b, rel_tol=1e-9, abs_tol=1e-12) else 0.5
    if math.isclose(score_a, score_b, rel_tol=1e-12, abs_tol=1e-15):
        return 0.5
    return 1.0 if (score_a > score_b) == (winner == "a") else 0.0


def judge_learned(
    reward: RewardModel,
    comparisons: Sequence[Comparison],
    *,
    margin: float = 0.1,
    by_source: Mapping[str, int] | None = None,
) -> tuple[RewardJudgement, LearnedReward | None]:
    """Leave-one-out agreement of the learned reward against the declared one's; the learned one passes by ``margin``."""
    before = dict(reward.weights)
    n = len(comparisons)
    if n == 0:
        judgement = RewardJudgement(False, math.nan, math.nan, margin, 0, before, before, "no preferences yet")
        return judgement, None
    features = features_for(reward, [m for c in comparisons for m in (c.a, c.b)])
    declared = float(
        np.mean([_agrees(reward.evaluate(c.a).reward, reward.evaluate(c.b).reward, c.winner) for c in comparisons])
    )
    held_out = []
    for k in range(n):
        rest = [c for i, c in enumerate(comparisons) if i != k]
        model = fit_preferences(reward, rest, features)
        c = comparisons[k]
        diff = utilities(reward, features, c.a) - utilities(reward, features, c.b)
        held_out.append(_agrees(model.logit(diff), 0.0, c.winner))
    learned_agreement = float(np.mean(held_out))
    model = fit_preferences(reward, comparisons, features)
    after = model.weights or before
    passed = n >= MIN_PREFERENCES and learned_agreement >= declared + margin
    if n < MIN_PREFERENCES:
        why = f"{n} preferences; at least {MIN_PREFERENCES} are needed before the learned reward may replace the declared one"
    elif passed:
        why = (
            f"the learned reward agrees with {learned_agreement:.0%} of held-out preferences, the declared weights with "
            f"{declared:.0%}: better by at least {margin:.0%}, so it replaces them"
        )
    else:
        why = (
            f"the learned reward agrees with {learned_agreement:.0%} of held-out preferences, the declared weights with "
            f"{declared:.0%}: not better by {margin:.0%}, so the declared weights stay"
        )
    judgement = RewardJudgement(
        passed, learned_agreement, declared, margin, n, before, after, why, dict(by_source or {})
    )
    return judgement, model


def kendall_tau(scores_a: Sequence[float], scores_b: Sequence[float]) -> float:
    """Kendall's tau-b between two scorings of the same candidates."""
    from scipy.stats import kendalltau

    tau = kendalltau(scores_a, scores_b).statistic
    return float(tau) if tau is not None and math.isfinite(tau) else 0.0
