"""A scripted oracle person for the learned reward: its utility differs from the declared weights.

The candidates are drawn like a search's trials (accuracy, F1, model size over four orders of magnitude,
latency); the oracle cares mostly about size (85%) and a little about accuracy (15%), while the declared
reward is accuracy only. The tests and ``benchmarks/learned_reward.py`` both teach from it.
"""

from __future__ import annotations

import numpy as np

from darkfab.evaluate import Comparison, RewardModel, choose_pair, features_for, fit_preferences, kendall_tau, utilities

DECLARED = RewardModel(task="classification", primary="accuracy", direction="maximize", weights={}, constraints=[])


def candidates(rng: np.random.Generator, n: int) -> list[dict[str, float]]:
    """``n`` candidates' metrics, drawn like a search's trials."""
    out = []
    for _ in range(n):
        acc = float(rng.uniform(0.85, 0.98))
        out.append(
            {
                "accuracy": acc,
                "f1": acc - float(rng.uniform(0, 0.02)),
                "model_size_mb": float(np.exp(rng.uniform(np.log(0.01), np.log(50)))),
                "latency_p95_ms": float(rng.uniform(0.1, 5)),
            }
        )
    return out


def oracle(m: dict[str, float]) -> float:
    """The oracle's hidden utility of one candidate."""
    return 0.15 * m["accuracy"] + 0.85 / (1 + m["model_size_mb"] / 10)


def teach(
    pool: list[dict[str, float]], answers: int, *, active: bool, seed: int, declared: RewardModel = DECLARED
) -> list[Comparison]:
    """The oracle's answers to ``answers`` pairs of ``pool``: darkfab's pair selection (``active``) or random.

    The first ``k`` answers are what ``teach(pool, k, ...)`` gives, so a prefix is the state after ``k``.
    """
    rng = np.random.default_rng(seed)
    features = features_for(declared, pool)
    comps: list[Comparison] = []
    asked: set[tuple[int, int]] = set()
    for _ in range(answers):
        if active:
            pair = choose_pair(declared, fit_preferences(declared, comps, features), pool, asked)
            if pair is None:
                break
        else:
            i, j = rng.choice(len(pool), 2, replace=False)
            pair = (int(i), int(j))
        asked.add(pair)
        a, b = pool[pair[0]], pool[pair[1]]
        comps.append(Comparison(a, b, "a" if oracle(a) > oracle(b) else "b"))
    return comps


def tau(comps: list[Comparison], pool: list[dict[str, float]], held: list[dict[str, float]]) -> float:
    """Kendall's tau of the reward learned from ``comps`` against the oracle's order of ``held``."""
    features = features_for(DECLARED, pool)
    model = fit_preferences(DECLARED, comps, features)
    return kendall_tau([model.logit(utilities(DECLARED, features, h)) for h in held], [oracle(h) for h in held])
