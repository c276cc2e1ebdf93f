"""The figures the console and ``darkfab.plots`` share, on plain records: no browser, no store."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from darkfab import plots
from darkfab.ui import _views as v


@dataclass(frozen=True)
class Point:
    number: int
    reward: float | None
    params: dict[str, Any] = field(default_factory=dict)
    trainer: str = "random_forest"


def test_the_front_is_what_comparing_every_pair_finds() -> None:
    rng = random.Random(3)
    for _ in range(300):
        points = [(float(rng.randint(0, 5)), float(rng.randint(0, 5))) for _ in range(rng.randint(0, 14))]
        signs = (rng.choice((1.0, -1.0)), rng.choice((1.0, -1.0)))
        keyed = [(a * signs[0], b * signs[1]) for a, b in points]
        pairwise = [
            not any(o[0] >= k[0] and o[1] >= k[1] and (o[0] > k[0] or o[1] > k[1]) for o in keyed) for k in keyed
        ]
        assert plots._front(points, signs) == pairwise


def test_importance_finds_the_parameter_that_drives_the_reward() -> None:
    rng = random.Random(0)
    trials = []
    for i in range(400):
        lr, depth, kind = rng.random(), rng.randint(2, 12), rng.choice(["gini", "entropy"])
        trials.append(Point(i + 1, 0.5 + 0.4 * lr + 0.01 * rng.random(), {"lr": lr, "depth": depth, "kind": kind}))
    trials.append(Point(401, None, {"lr": 0.5}))  # unscored: left out
    ranked = plots.importances(trials)
    assert [r[0] for r in ranked][0] == "lr" and ranked[0][1] > 0.8
    assert all(r[1] < 0.05 for r in ranked[1:]) and all(r[2] == 400 for r in ranked)
    spec = plots.importance_spec(trials, ranked)
    assert spec["data"][0]["y"][-1] == "lr"  # drawn top down, the most important on top
    assert plots.importances([]) == [] and plots.importance_spec([])["layout"]["annotations"]


def test_parallel_coordinates_thin_evenly_and_end_with_the_reward() -> None:
    trials = [Point(i, i / 5000, {"lr": i / 5000, "kind": "ab"[i % 2]}) for i in range(1, 5001)]
    spec = plots.parallel_spec(trials)
    axes = spec["layout"]["meta"]["axes"]
    assert axes[-1] == "reward" and {"lr", "kind"} <= set(axes)
    lines = sum(t["x"].count(None) for t in spec["data"])  # one break after each trial's line
    assert lines <= plots.PARALLEL_MAX and "thinned" in spec["layout"]["title"]["text"]
    assert len(spec["data"]) == plots.BANDS
    assert all(0.0 <= y <= 1.0 for t in spec["data"] for y in t["y"] if y is not None)
    texts = {a["text"] for a in spec["layout"]["annotations"]}
    assert {"a", "b"} <= texts  # a choice's values are named on its axis


def test_the_pareto_front_needs_constraints_or_a_second_weighted_metric() -> None:
    assert v.pareto_axes({"objective": {}}) is None
    assert v.pareto_axes({"objective": {"weights": {"accuracy": 1.0}}}) is None
    constrained = {"objective": {"constraints": [{"metric": "latency_p95_ms", "op": "<=", "value": 20}]}}
    assert v.pareto_axes(constrained) == ("accuracy", "latency_p95_ms", "the first constrained metric")
    weighted = {"task": "regression", "objective": {"weights": {"rmse": 1.0, "model_size_mb": 0.1}}}
    assert v.pareto_axes(weighted) == ("rmse", "model_size_mb", "a weighted metric")


def test_the_specs_are_valid_plotly_figures_for_notebooks() -> None:
    go = pytest.importorskip("plotly.graph_objects", reason="plotly is not installed (the plots extra)")
    trials = [Point(i, i / 50, {"lr": i / 50, "kind": "ab"[i % 2]}) for i in range(1, 51)]
    for spec in (
        plots.importance_spec(trials),
        plots.parallel_spec(trials),
        plots.pareto_spec([("t1", 0.9, 5.0), ("t2", 0.8, 1.0), ("t3", 0.7, 9.0)], "accuracy", "latency", (1.0, -1.0)),
    ):
        fig = go.Figure(spec)  # plotly validates every attribute
        assert fig.data
