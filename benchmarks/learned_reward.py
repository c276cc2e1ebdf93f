"""How fast preferences teach the learned reward: darkfab's pair selection against random pairs.

A scripted oracle person cares mostly about model size (85%) and a little about accuracy (15%); the declared
reward is accuracy only. Candidates are drawn like a search's trials. After each answer the learned reward
ranks 40 held-out candidates; the figure is Kendall's tau against the oracle's order, averaged over seeds.

Run: ``.venv/bin/python benchmarks/learned_reward.py [--seeds 10] [--answers 40]``. Prints a Markdown table.
"""

from __future__ import annotations

import argparse

import numpy as np

from darkfab.evaluate import (
    Comparison,
    RewardModel,
    choose_pair,
    features_for,
    fit_preferences,
    kendall_tau,
    utilities,
)

DECLARED = RewardModel(task="classification", primary="accuracy", direction="maximize", weights={}, constraints=[])


def candidates(rng: np.random.Generator, n: int) -> list[dict[str, float]]:
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
    return 0.15 * m["accuracy"] + 0.85 / (1 + m["model_size_mb"] / 10)


def curve(seed: int, answers: int, active: bool) -> list[float]:
    rng = np.random.default_rng(seed)
    pool, held = candidates(rng, 40), candidates(rng, 40)
    features = features_for(DECLARED, pool)
    truth = [oracle(h) for h in held]
    comps: list[Comparison] = []
    asked: set[tuple[int, int]] = set()
    taus = []
    for _ in range(answers + 1):
        model = fit_preferences(DECLARED, comps, features)
        taus.append(kendall_tau([model.logit(utilities(DECLARED, features, h)) for h in held], truth))
        if active:
            pair = choose_pair(DECLARED, model, pool, asked)
            assert pair is not None
        else:
            i, j = rng.choice(len(pool), 2, replace=False)
            pair = (int(i), int(j))
        asked.add(pair)
        a, b = pool[pair[0]], pool[pair[1]]
        comps.append(Comparison(a, b, "a" if oracle(a) > oracle(b) else "b"))
    return taus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--answers", type=int, default=40)
    args = parser.parse_args()
    active = np.mean([curve(s, args.answers, True) for s in range(args.seeds)], axis=0)
    rand = np.mean([curve(1000 + s, args.answers, False) for s in range(args.seeds)], axis=0)
    print(f"Kendall tau against the oracle on 40 held-out candidates, mean of {args.seeds} seeds\n")
    print("| answers | darkfab's pairs | random pairs |\n|---:|---:|---:|")
    for k in (0, 5, 10, 15, 20, 25, 30, 40):
        if k <= args.answers:
            print(f"| {k} | {active[k]:.3f} | {rand[k]:.3f} |")


if __name__ == "__main__":
    main()
