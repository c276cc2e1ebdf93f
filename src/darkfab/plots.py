"""Figures of a factory for notebooks: the optimization history, the Pareto front and drift over time.

Each function returns a ``plotly.graph_objects.Figure`` (``fig.show()`` in Jupyter, ``fig.write_html(path)``
elsewhere). Plotly is optional: ``pip install 'darkfab[plots]'``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import DarkfabError, SpecError

if TYPE_CHECKING:
    from .runtime import Factory
    from .spec import Direction
    from .store import TrialRecord

__all__ = ["drift", "optimization_history", "pareto_front"]


def _go() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise DarkfabError("plotly is not installed; fix: pip install 'darkfab[plots]' (or plotly)") from None
    return go


def _completed(factory: Factory) -> list[TrialRecord]:
    return [t for t in factory.trials() if t.state == "completed" and t.metrics is not None]


def _metric(t: TrialRecord, name: str) -> float:
    value = (t.metrics or {}).get(name)
    return float(value) if isinstance(value, (int, float)) else math.nan


def _primary_direction(factory: Factory, trials: Sequence[TrialRecord]) -> tuple[str, Direction]:
    spec = factory.spec
    metric = spec.objective.metric
    if metric is None:  # the task's default: rmse for regression, accuracy for classification
        metric = "rmse" if any("rmse" in (t.metrics or {}) for t in trials) else "accuracy"
    return metric, spec.objective.direction or spec.metric_direction(metric)


def optimization_history(factory: Factory) -> Any:
    """Each completed trial's validation score by trial number, and the best score so far."""
    go = _go()
    trials = sorted(_completed(factory), key=lambda t: t.number)
    metric, direction = _primary_direction(factory, trials)
    better = max if direction == "maximize" else min
    xs, ys, best, text = [], [], [], []
    current = math.nan
    for t in trials:
        if t.value is None or not math.isfinite(t.value):
            continue
        current = t.value if math.isnan(current) else better(current, t.value)
        xs.append(t.number)
        ys.append(t.value)
        best.append(current)
        text.append(f"{t.trainer} ({t.proposer})")
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name="trial", text=text))
    fig.add_trace(go.Scatter(x=xs, y=best, mode="lines", name=f"best so far ({direction})", line={"shape": "hv"}))
    fig.update_layout(
        title=f"{factory.name}: optimization history", xaxis_title="trial", yaxis_title=f"{metric} (validation)"
    )
    return fig


def _front(points: list[tuple[float, float]], signs: tuple[float, float]) -> list[bool]:
    """Which points no other point dominates (both coordinates at least as good, one better)."""
    keyed = [(p[0] * signs[0], p[1] * signs[1]) for p in points]
    return [not any(o[0] >= k[0] and o[1] >= k[1] and (o[0] > k[0] or o[1] > k[1]) for o in keyed) for k in keyed]


def pareto_front(factory: Factory, x: str, y: str) -> Any:
    """Completed trials on two metrics (validation), the non-dominated ones marked and joined."""
    go = _go()
    trials = _completed(factory)
    spec = factory.spec
    known = sorted({k for t in trials for k in t.metrics or {}})
    for name in (x, y):
        if name not in known:
            raise SpecError(
                f"the trials of {factory.name!r} have no metric {name!r}; fix: use one of {', '.join(known) or '(none)'}"
            )
    rows = [(t, _metric(t, x), _metric(t, y)) for t in trials]
    rows = [r for r in rows if math.isfinite(r[1]) and math.isfinite(r[2])]
    signs = tuple(1.0 if spec.metric_direction(n) == "maximize" else -1.0 for n in (x, y))
    on_front = _front([(a, b) for _, a, b in rows], (signs[0], signs[1]))
    front = sorted((a, b) for (_, a, b), keep in zip(rows, on_front, strict=True) if keep)
    rest = [(t, a, b) for (t, a, b), keep in zip(rows, on_front, strict=True) if not keep]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[a for _, a, _ in rest],
            y=[b for _, _, b in rest],
            mode="markers",
            name="dominated",
            text=[f"trial {t.number} {t.trainer}" for t, _, _ in rest],
            marker={"opacity": 0.5},
        )
    )
    fig.add_trace(
        go.Scatter(x=[a for a, _ in front], y=[b for _, b in front], mode="lines+markers", name="Pareto front")
    )
    fig.update_layout(title=f"{factory.name}: Pareto front", xaxis_title=x, yaxis_title=y)
    return fig


def drift(factory: Factory) -> Any:
    """Per monitor window: the share of drifted features, the windows with dataset drift, and the threshold."""
    go = _go()
    store = factory.store
    windows = store.list_monitor_windows(store.get_factory(factory.name).id)
    numbers = [w.number for w in windows]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=numbers,
            y=[w.share_drifted for w in windows],
            mode="lines+markers",
            name="share of features drifted",
            text=[w.reason for w in windows],
        )
    )
    flagged = [w for w in windows if w.dataset_drift]
    fig.add_trace(
        go.Scatter(
            x=[w.number for w in flagged],
            y=[w.share_drifted for w in flagged],
            mode="markers",
            name="dataset drift",
            marker={"symbol": "x", "size": 12},
        )
    )
    fig.add_hline(y=float(factory.spec.monitor.drift_share), line_dash="dot", annotation_text="dataset drift threshold")
    fig.update_layout(
        title=f"{factory.name}: drift by monitor window", xaxis_title="window", yaxis_title="share drifted"
    )
    return fig
