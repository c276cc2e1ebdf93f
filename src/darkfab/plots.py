"""Figures of a factory for notebooks: the optimization history, parameter importance, parallel
coordinates, the Pareto front and drift over time.

Each function returns a ``plotly.graph_objects.Figure`` (``fig.show()`` in Jupyter, ``fig.write_html(path)``
elsewhere). Plotly is optional: ``pip install 'darkfab[plots]'``. The figures are built as plain plotly
JSON (``*_spec``) without importing plotly; the oversight console draws the same specs in the browser.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .errors import DarkfabError, SpecError

if TYPE_CHECKING:
    from .runtime import Factory
    from .spec import Direction
    from .store import TrialRecord

__all__ = [
    "IMPORTANCE_METHOD",
    "drift",
    "importance_spec",
    "optimization_history",
    "parallel_coordinates",
    "parallel_spec",
    "parameter_importance",
    "pareto_front",
    "pareto_spec",
]

IMPORTANCE_METHOD = (
    "share of the reward's variance each parameter explains alone: one-way ANOVA over up to 10 quantile bins "
    "(numbers) or values (choices), bias-corrected (epsilon squared); interactions are not counted"
)
BINS = 10
PARALLEL_MAX = 1000  # lines drawn at most; more are thinned evenly by trial number
PARALLEL_DIMS = 6  # parameters shown at most, the most important first
BANDS = 5  # parallel coordinates: one colour per fifth of the reward
BAND_COLORS = ("#440154", "#3b528b", "#21918c", "#5ec962", "#fde725")  # viridis, worst to best


class Scored(Protocol):
    """What the shared figures read of a trial (a ``TrialRecord`` or the console's lighter point)."""

    @property
    def number(self) -> int: ...
    @property
    def trainer(self) -> str: ...
    @property
    def params(self) -> dict[str, Any]: ...
    @property
    def reward(self) -> float | None: ...


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
    """Which points no other point dominates (both coordinates at least as good, one better); n log n."""
    keyed = [(p[0] * signs[0], p[1] * signs[1]) for p in points]
    order = sorted(range(len(keyed)), key=lambda i: (-keyed[i][0], -keyed[i][1]))
    keep = [False] * len(keyed)
    best_y = -math.inf  # the best second coordinate among points with a strictly better first one
    i = 0
    while i < len(order):
        x = keyed[order[i]][0]
        j = i
        while j < len(order) and keyed[order[j]][0] == x:
            j += 1
        top = keyed[order[i]][1]
        if top > best_y:
            for k in order[i:j]:
                keep[k] = keyed[k][1] == top
        best_y = max(best_y, top)
        i = j
    return keep


def pareto_spec(rows: list[tuple[str, float, float]], x: str, y: str, signs: tuple[float, float]) -> dict[str, Any]:
    """The Pareto front of ``(label, x, y)`` points as plotly JSON: dominated points, and the front joined."""
    rows = [r for r in rows if math.isfinite(r[1]) and math.isfinite(r[2])]
    on_front = _front([(a, b) for _, a, b in rows], signs)
    front = sorted((a, b) for (_, a, b), keep in zip(rows, on_front, strict=True) if keep)
    rest = [r for r, keep in zip(rows, on_front, strict=True) if not keep]
    return {
        "data": [
            {
                "type": "scatter",
                "x": [a for _, a, _ in rest],
                "y": [b for _, _, b in rest],
                "mode": "markers",
                "name": "dominated",
                "text": [t for t, _, _ in rest],
                "marker": {"opacity": 0.5},
            },
            {
                "type": "scatter",
                "x": [a for a, _ in front],
                "y": [b for _, b in front],
                "mode": "lines+markers",
                "name": "Pareto front",
            },
        ],
        "layout": {"title": {"text": "Pareto front"}, "xaxis": {"title": {"text": x}}, "yaxis": {"title": {"text": y}}},
    }


def finite(x: Any) -> float | None:
    if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return None


def _scored(trials: Sequence[Scored]) -> list[Scored]:
    return [t for t in trials if finite(t.reward) is not None]


def _values(trials: Sequence[Scored], name: str) -> list[tuple[Any, float]]:
    """(parameter value, reward) of the scored trials that have parameter ``name`` (``trainer`` included)."""
    if name == "trainer":
        return [(t.trainer, float(t.reward or 0.0)) for t in trials]
    return [(t.params[name], float(t.reward or 0.0)) for t in trials if name in t.params]


def _groups(pairs: list[tuple[Any, float]]) -> list[list[float]]:
    """Rewards grouped by quantile bin (numbers) or by value (anything else)."""
    numeric = all(finite(v) is not None for v, _ in pairs)
    groups: dict[Any, list[float]] = {}
    if numeric:
        xs = sorted(float(v) for v, _ in pairs)
        edges = sorted({xs[min(len(xs) - 1, (len(xs) * i) // BINS)] for i in range(1, BINS)})
        for v, r in pairs:
            groups.setdefault(bisect_right(edges, float(v)), []).append(r)
    else:
        for v, r in pairs:
            groups.setdefault(repr(v), []).append(r)
    return list(groups.values())


def epsilon_squared(groups: list[list[float]]) -> float:
    """The bias-corrected share of variance the grouping explains (0 when it explains nothing)."""
    n = sum(len(g) for g in groups)
    k = len(groups)
    if k < 2 or n <= k:
        return 0.0
    mean = sum(sum(g) for g in groups) / n
    total = sum((r - mean) ** 2 for g in groups for r in g)
    if total <= 0:
        return 0.0
    between = sum(len(g) * (sum(g) / len(g) - mean) ** 2 for g in groups)
    within = total - between
    return max(0.0, (between - (k - 1) * within / (n - k)) / total)


def importances(trials: Sequence[Scored]) -> list[tuple[str, float, int]]:
    """(parameter, importance, trials used) for every parameter of the scored trials, most important first."""
    scored = _scored(trials)
    names = sorted({k for t in scored for k in t.params if not k.startswith("_")})
    if len({t.trainer for t in scored}) > 1:
        names.append("trainer")
    out = []
    for name in names:
        pairs = _values(scored, name)
        out.append((name, epsilon_squared(_groups(pairs)), len(pairs)))
    return sorted(out, key=lambda r: (-r[1], r[0]))


def importance_spec(trials: Sequence[Scored], ranked: list[tuple[str, float, int]] | None = None) -> dict[str, Any]:
    """Parameter importance as a horizontal bar chart (plotly JSON), the method in the title."""
    ranked = importances(trials) if ranked is None else ranked
    shown = list(reversed(ranked))
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "x": [r[1] for r in shown],
                "y": [r[0] for r in shown],
                "text": [f"{r[1]:.3f} over {r[2]} trials" for r in shown],
                "name": "importance",
            }
        ],
        "layout": {
            "title": {"text": "parameter importance"},
            "xaxis": {
                "title": {"text": "epsilon squared (share of reward variance explained alone)"},
                "rangemode": "tozero",
            },
            "yaxis": {"automargin": True},
            "annotations": [] if ranked else [{"text": "no scored trials yet", "showarrow": False}],
        },
    }


def _axis(name: str, raw: list[Any]) -> tuple[list[float], list[tuple[float, str]]]:
    """One axis: each value placed in [0, 1], and the (place, text) labels along it."""
    if all(finite(v) is not None for v in raw):
        xs = [float(v) for v in raw]
        lo, hi = min(xs, default=0.0), max(xs, default=0.0)
        span = hi - lo
        return [(x - lo) / span if span else 0.5 for x in xs], [(0.0, f"{lo:.4g}"), (1.0, f"{hi:.4g}")]
    labels = sorted({str(v) for v in raw})
    place = {lab: (i / (len(labels) - 1) if len(labels) > 1 else 0.5) for i, lab in enumerate(labels)}
    return [place[str(v)] for v in raw], [(place[lab], lab) for lab in labels]


def parallel_spec(trials: Sequence[Scored], ranked: list[tuple[str, float, int]] | None = None) -> dict[str, Any]:
    """Parallel coordinates of the most important parameters and the reward (plotly JSON).

    Drawn as SVG lines (one trace per fifth of the reward, the best last and brightest), not as plotly's
    ``parcoords``, which needs WebGL: the console must draw on any browser, offline, GPU or not.
    """
    scored = _scored(trials)
    ranked = importances(scored) if ranked is None else ranked
    names = [r[0] for r in ranked if r[2] * 2 >= len(scored)][:PARALLEL_DIMS]
    having = [t for t in scored if all(n == "trainer" or n in t.params for n in names)]
    step = max(1, math.ceil(len(having) / PARALLEL_MAX))
    drawn = sorted(having, key=lambda t: t.number)[::step]
    columns = [[t.trainer if n == "trainer" else t.params[n] for t in drawn] for n in names]
    columns.append([float(t.reward or 0.0) for t in drawn])
    axes = [*names, "reward"]
    placed = [_axis(n, col) for n, col in zip(axes, columns, strict=True)]
    order = sorted(range(len(drawn)), key=lambda i: float(drawn[i].reward or 0.0))
    traces = []
    for band in range(BANDS):
        rows = order[band * len(order) // BANDS : (band + 1) * len(order) // BANDS]
        if not rows:
            continue
        xs: list[float | None] = []
        ys: list[float | None] = []
        for i in rows:
            xs += [*range(len(axes)), None]
            ys += [*(p[0][i] for p in placed), None]
        low, high = drawn[rows[0]].reward or 0.0, drawn[rows[-1]].reward or 0.0
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": xs,
                "y": ys,
                "name": f"reward {low:.4g} to {high:.4g}",
                "line": {"color": BAND_COLORS[band], "width": 1},
                "opacity": 0.6,
                "hoverinfo": "skip",
            }
        )
    notes = [
        {"x": k, "y": 1.1, "text": f"<b>{name}</b>", "showarrow": False, "yanchor": "bottom"}
        for k, name in enumerate(axes)
    ]
    for k, (_, ticks) in enumerate(placed):
        notes += [{"x": k, "y": y, "text": text, "showarrow": False, "xanchor": "left"} for y, text in ticks[:12]]
    title = f"parallel coordinates ({len(drawn)} of {len(scored)} scored trials"
    title += ", thinned evenly by trial number)" if step > 1 else ")"
    return {
        "data": traces,
        "layout": {
            "title": {"text": title},
            "meta": {"axes": axes},
            "xaxis": {"visible": False, "range": [-0.2, len(axes) - 0.5]},
            "yaxis": {"visible": False, "range": [-0.08, 1.2]},
            "shapes": [
                {"type": "line", "x0": k, "x1": k, "y0": 0, "y1": 1, "line": {"color": "#444", "width": 1}}
                for k in range(len(axes))
            ],
            "annotations": notes,
        },
    }


def _figure(spec: dict[str, Any], title: str) -> Any:
    fig = _go().Figure(spec)
    fig.update_layout(title=title)
    return fig


def parameter_importance(factory: Factory) -> Any:
    """How much of the reward's variance each parameter explains alone (see :data:`IMPORTANCE_METHOD`)."""
    return _figure(importance_spec(_completed(factory)), f"{factory.name}: parameter importance")


def parallel_coordinates(factory: Factory) -> Any:
    """The completed trials' most important parameters against their reward."""
    return _figure(parallel_spec(_completed(factory)), f"{factory.name}: parallel coordinates")


def pareto_front(factory: Factory, x: str, y: str) -> Any:
    """Completed trials on two metrics (validation), the non-dominated ones marked and joined."""
    _go()  # the missing-plotly error before any other
    trials = _completed(factory)
    spec = factory.spec
    known = sorted({k for t in trials for k in t.metrics or {}})
    for name in (x, y):
        if name not in known:
            raise SpecError(
                f"the trials of {factory.name!r} have no metric {name!r}; fix: use one of {', '.join(known) or '(none)'}"
            )
    rows = [(f"trial {t.number} {t.trainer}", _metric(t, x), _metric(t, y)) for t in trials]
    signs = (
        1.0 if spec.metric_direction(x) == "maximize" else -1.0,
        1.0 if spec.metric_direction(y) == "maximize" else -1.0,
    )
    return _figure(pareto_spec(rows, x, y, signs), f"{factory.name}: Pareto front")


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
