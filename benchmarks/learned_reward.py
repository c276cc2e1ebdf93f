"""How fast preferences teach the learned reward: darkfab's pair selection against random pairs.

A scripted oracle person cares mostly about model size (85%) and a little about accuracy (15%); the declared
reward is accuracy only. Candidates are drawn like a search's trials. After each answer the learned reward
ranks 40 held-out candidates; the figure is Kendall's tau against the oracle's order, averaged over seeds.

Run: ``.venv/bin/python benchmarks/learned_reward.py [--seeds 10] [--answers 40]``. Prints a Markdown table.
"""

from __future__ import annotations

import argparse

import numpy as np

from darkfab.testing.oracle import candidates, tau, teach


def curve(seed: int, answers: int, active: bool) -> list[float]:
    """Kendall tau against the oracle on 40 held-out candidates after 0, 1, ... ``answers`` answers."""
    rng = np.random.default_rng(seed)
    pool, held = candidates(rng, 40), candidates(rng, 40)
    comps = teach(pool, answers, active=active, seed=seed)
    return [tau(comps[:k], pool, held) for k in range(answers + 1)]


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
