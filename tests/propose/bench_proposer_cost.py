"""Measure what one trial costs the proposer: ``propose(1)`` + ``observe`` after N completed trials.

Run: ``.venv/bin/python tests/propose/bench_proposer_cost.py [N]``. Prints; asserts nothing.
"""

from __future__ import annotations

import math
import sys
import time

from darkfab.propose import Proposer, SearchContext, TrialView, make_proposer
from darkfab.spec import ParamSpec, TrainerSpec


def _context(seed: int = 0) -> SearchContext:
    return SearchContext(
        trainers=[TrainerSpec(name=n) for n in ("tree", "linear", "knn")],
        spaces={
            "tree": {"max_depth": ParamSpec(low=2, high=12), "criterion": ParamSpec(choices=["gini", "entropy"])},
            "linear": {"C": ParamSpec(low=1e-3, high=1e3, log=True), "fit_intercept": True},
            "knn": {"n_neighbors": ParamSpec(low=1, high=50), "p": ParamSpec(low=1.0, high=2.0)},
        },
        directions=("maximize",),
        objective_names=("accuracy",),
        seed=seed,
        startup_trials=10,
        pruner="median",
    )


def _score(trainer: str, params: dict) -> float:
    if trainer == "linear":
        return 0.9 - 0.02 * abs(math.log10(params["C"]) - 1.0)
    if trainer == "tree":
        return 0.85 - 0.01 * abs(params["max_depth"] - 7)
    return 0.8 - 0.002 * abs(params["n_neighbors"] - 20)


def _trial(proposer: Proposer, i: int) -> None:
    (p,) = proposer.propose(1)
    v = _score(p.trainer, p.params)
    view = TrialView(i, proposer.name, p.trainer, p.params, "completed", v, feasible=True)
    proposer.observe(p, view)


def main(n: int = 200, measure: int = 50) -> None:
    for name in ("random", "tpe", "qmc", "nsga2", "cmaes"):
        proposer = make_proposer(name, _context())
        for i in range(n):
            _trial(proposer, i)
        start = time.perf_counter()
        for i in range(n, n + measure):
            _trial(proposer, i)
        per = (time.perf_counter() - start) / measure
        print(f"{name:7s} propose(1)+observe after {n} trials: {per * 1e3:7.2f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
