"""The promotion rule on figures made by hand, and the live figures that feed it."""

from __future__ import annotations

from typing import Any

from darkfab.serve import MIN_LABELLED, ContestFigures, Figures, LiveFigures, judge
from darkfab.spec import DeploySpec


def figures(version: int, *, requests: int = 200, errors: int = 0, p95: float | None = 4.0, **quality: Any) -> dict:
    q = {"metric": "accuracy", "value": None, "labelled_rows": 0, **quality}
    return {
        "version": version,
        "requests": requests,
        "errors": errors,
        "error_rate": errors / requests,
        "latency_p95_ms": p95,
        "quality": q,
    }


def contest(deploy: DeploySpec, champion: dict, challenger: dict, **floor: float) -> ContestFigures:
    return ContestFigures(deploy, Figures.of(champion), Figures.of(challenger), **floor)


def test_an_equal_challenger_is_promoted_and_the_reason_states_the_figures() -> None:
    deploy = DeploySpec(mode="canary")
    v = judge(
        contest(
            deploy,
            figures(1, p95=3.9, value=0.96, labelled_rows=120),
            figures(3, p95=4.1, value=0.97, labelled_rows=120),
        )
    )
    assert v.promote and v.checks == {"error_rate": True, "latency": True, "quality": True}
    assert v.reason == (
        "promoted: no worse than the champion; challenger v3 vs champion v1 after 200 requests: error rate 0.000 vs "
        "0.000, p95 4.10 ms vs 3.90 ms (ratio 1.05 <= 1.5), accuracy 0.970 vs 0.960 on 120 and 120 labelled rows"
    )


def test_each_rule_can_roll_back() -> None:
    deploy = DeploySpec(mode="canary", max_error_rate_increase=0.01, max_latency_ratio=1.5, max_quality_drop=0.02)
    champion = figures(1, value=0.9, labelled_rows=100)
    errors = judge(contest(deploy, champion, figures(2, errors=4, value=0.9, labelled_rows=100)))
    assert not errors.promote and errors.reason.startswith("rolled back: error rate 0.020 > 0.000 + 0.01 allowed")
    slow = judge(contest(deploy, champion, figures(2, p95=8.0, value=0.9, labelled_rows=100)))
    assert not slow.promote and "p95 latency ratio 2.00 > 1.5" in slow.reason
    worse = judge(contest(deploy, champion, figures(2, value=0.85, labelled_rows=100)))
    assert not worse.promote and "accuracy 0.850 < 0.900 - 0.02 allowed" in worse.reason
    within = judge(contest(deploy, champion, figures(2, value=0.885, labelled_rows=100)))
    assert within.promote


def test_quality_is_compared_only_with_enough_labels_and_rmse_points_down() -> None:
    deploy = DeploySpec(mode="shadow")
    few = judge(
        contest(deploy, figures(1, value=0.9, labelled_rows=500), figures(2, value=0.1, labelled_rows=MIN_LABELLED - 1))
    )
    assert few.promote and "quality" not in few.checks and f"{MIN_LABELLED} each are needed" in few.reason
    rmse = {"metric": "rmse", "labelled_rows": 50}
    assert judge(contest(deploy, figures(1, **rmse, value=10.0), figures(2, **rmse, value=9.0))).promote
    assert not judge(contest(deploy, figures(1, **rmse, value=10.0), figures(2, **rmse, value=11.0))).promote


def test_latencies_under_the_floor_count_as_equal() -> None:
    deploy = DeploySpec(mode="canary", max_latency_ratio=1.5)
    assert judge(contest(deploy, figures(1, p95=0.2), figures(2, p95=0.9))).promote  # both under 1 ms
    assert not judge(contest(deploy, figures(1, p95=0.2), figures(2, p95=0.9), latency_floor_ms=0.1)).promote


def test_live_figures_count_errors_latency_distribution_and_quality() -> None:
    f = LiveFigures(2, "binary")
    f.answered(0.002, ["good", "bad", "good"])
    f.answered(0.004, ["good"])
    f.failed()
    f.labelled(("r1", 0), "good", "good")
    f.labelled(("r1", 1), "bad", "good")
    f.labelled(("r1", 1), "bad", "bad")  # a second label for the same row replaces the first
    snap = f.snapshot()
    assert (snap["requests"], snap["errors"], snap["rows"]) == (3, 1, 4) and abs(snap["error_rate"] - 1 / 3) < 1e-12
    assert snap["distribution"] == {"classes": {"bad": 0.25, "good": 0.75}}
    assert 2.0 <= snap["latency_p50_ms"] <= snap["latency_p95_ms"] <= 4.0
    assert snap["quality"] == {"metric": "accuracy", "value": 1.0, "labelled_rows": 2}
    r = LiveFigures(1, "regression")
    r.answered(0.001, [1.0, 3.0])
    r.labelled(("a", 0), 1.0, 2.0)
    r.labelled(("a", 1), 3.0, 6.0)
    snap = r.snapshot()
    assert snap["distribution"] == {"mean": 2.0, "std": 1.0}
    assert snap["quality"]["metric"] == "rmse" and abs(snap["quality"]["value"] - (5.0**0.5)) < 1e-12
