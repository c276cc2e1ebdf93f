"""Measure the factory's per-trial evaluation cost: ``compute_metrics`` + ``RewardModel.evaluate``.

Run: ``.venv/bin/python tests/evaluate/bench_evaluate_cost.py``. Prints; asserts nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from darkfab.evaluate import GroupCodes, RewardModel, bootstrap_scores, compute_metrics, gate
from darkfab.spec import Constraint


def _per_call(fn: Callable[[], Any], repeat: int = 2000) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main(n: int = 400, k: int = 10) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, k, n)
    p = rng.dirichlet(np.ones(k), n)
    groups = rng.choice(np.array(["a", "b", None], dtype=object), n)
    codes = GroupCodes(groups)
    reward = RewardModel(
        task="classification",
        primary="accuracy",
        direction="maximize",
        weights={"log_loss": 0.5, "latency_p95_ms": 0.1},
        constraints=[Constraint(metric="latency_p95_ms", op="<=", value=20.0)],
    )
    extra = {"latency_p95_ms": 3.0, "model_size_mb": 1.0, "train_seconds": 0.1}

    def trial() -> None:
        reward.evaluate({**compute_metrics("classification", y, p, n_classes=k), **extra})

    def trial_with_groups() -> None:
        reward.evaluate({**compute_metrics("classification", y, p, n_classes=k, groups=codes), **extra})

    print(f"compute_metrics + evaluate, {n} x {k}:               {_per_call(trial) * 1e6:7.0f} us")
    print(f"  with fairness (groups encoded once by GroupCodes): {_per_call(trial_with_groups) * 1e6:7.0f} us")
    for metric in ("accuracy", "f1", "roc_auc", "log_loss"):
        t = _per_call(lambda m=metric: bootstrap_scores("classification", m, y, p, n_boot=1000, seed=0), 5)
        print(f"bootstrap_scores {metric:9s} n_boot=1000:           {t * 1e3:7.1f} ms")
    q = np.roll(p, 1, axis=0)
    t = _per_call(
        lambda: gate(
            task="classification",
            metric="roc_auc",
            direction="maximize",
            y_true=y,
            candidate=p,
            champion=q,
            min_improvement=0.0,
            confidence=0.9,
            n_boot=1000,
            seed=0,
        ),
        5,
    )
    print(f"gate on roc_auc, n_boot=1000:                         {t * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
