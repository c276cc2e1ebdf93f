"""Small factory files the tests write: one trainer with its default space, a 60 s trial timeout."""

from __future__ import annotations


def small_factory(
    name: str,
    *,
    source: str = "sklearn:breast_cancer",
    target: str = "target",
    budget: str = "{trials: 3}",
    gate: str = "{bootstrap: 100}",
    workers: int = 1,
    latency_rows: int = 3,
) -> str:
    """The text of a factory file: ``logistic_regression`` on ``source``'s column ``target``."""
    return (
        f"name: {name}\n"
        f'data: {{source: "{source}", target: {target}}}\n'
        "trainers:\n"
        "  - name: logistic_regression\n"
        f"budget: {budget}\n"
        f"execution: {{workers: {workers}, trial_timeout: 60s, latency_rows: {latency_rows}}}\n"
        f"gate: {gate}\n"
    )
