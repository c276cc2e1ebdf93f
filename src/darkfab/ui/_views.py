"""What each page shows, read from the store through its public API; plain dicts and records for templates.

Nothing here renders HTML: the templates escape every value (generated code and LLM text are hostile).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import DarkfabError, NotFoundError
from ..plots import finite, importance_spec, importances, parallel_spec, pareto_spec
from ..registry import PENDING, Registry
from ..spec import METRICS
from ..store import (
    CampaignRecord,
    ChainReport,
    FactoryRecord,
    LLMCallRecord,
    ModelVersionRecord,
    PauseRecord,
    Pauses,
    ProposerCounts,
    Store,
    TrialPoint,
    TrialRecord,
)

PAGE_SIZES = (25, 50, 100, 200)
SORT_KEYS = ("number", "reward", "value", "state", "proposer", "trainer", "wall")
WORKER_FRESH_S = 60.0
EVENT_LIMITS = (100, 200, 500, 1000, 5000)


def chart_json(traces: list[dict[str, Any]], layout: dict[str, Any]) -> str:
    """A chart as JSON for the page's ``data-chart`` attribute (the template escapes it as an attribute)."""
    return json.dumps({"data": traces, "layout": layout}, default=str, allow_nan=False)


# -- factories --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spend:
    what: str
    used: float
    limit: float | None

    @property
    def share(self) -> float | None:
        return None if not self.limit else min(1.0, self.used / self.limit)


@dataclass(frozen=True)
class FactoryRow:
    factory: FactoryRecord
    champion: ModelVersionRecord | None
    challenger: ModelVersionRecord | None
    campaign: CampaignRecord | None
    counts: dict[str, int]
    workers: int
    spend: list[Spend]
    versions: list[ModelVersionRecord]
    pending: ModelVersionRecord | None = None  # the gate winner waiting for a person (gate.approval: required)
    paused: PauseRecord | None = None  # who paused the factory, since when and why


def _alias_version(store: Store, factory_id: int, held: dict[str, int], alias: str) -> ModelVersionRecord | None:
    if alias not in held:
        return None
    try:
        return store.get_model_version(factory_id, held[alias])
    except NotFoundError:
        return None


def spend_of(store: Store, factory: FactoryRecord, campaign: CampaignRecord, counts: dict[str, int]) -> list[Spend]:
    """What the campaign has used of each of its budgets (trials, time, CPU, LLM cost when declared)."""
    budget = campaign.budget or {}
    done = sum(n for state, n in counts.items() if state not in ("queued", "running"))
    rows = [
        Spend("trials", float(done), finite(budget.get("trials"))),
        Spend("wall seconds", campaign.elapsed_s, finite(budget.get("time"))),
        Spend("CPU seconds", campaign.cpu_s, finite(budget.get("cpu"))),
    ]
    llm = (factory.spec.get("search") or {}).get("llm")
    if llm:
        _tokens, cost = store.llm_usage(campaign.id)
        rows.append(Spend("LLM cost", cost, finite(llm.get("max_cost"))))
    return rows


def factory_row(store: Store, factory: FactoryRecord) -> FactoryRow:
    held = store.aliases(factory.id)
    campaign = store.latest_campaign(factory.id)
    counts = store.count_trials(campaign.id) if campaign else {}
    return FactoryRow(
        factory=factory,
        champion=_alias_version(store, factory.id, held, "champion"),
        challenger=_alias_version(store, factory.id, held, "challenger"),
        campaign=campaign,
        counts=counts,
        workers=len(store.list_workers(factory.name, within_s=WORKER_FRESH_S)),
        spend=spend_of(store, factory, campaign, counts) if campaign else [],
        versions=store.list_model_versions(factory.id),
        pending=_alias_version(store, factory.id, held, PENDING),
        paused=Pauses(store).state(factory.id),
    )


def factory_by_id(store: Store, factory_id: int) -> FactoryRecord:
    for f in store.list_factories():
        if f.id == factory_id:
            return f
    raise NotFoundError(f"no factory with id {factory_id} in the store")


# -- campaigns --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProposerRow:
    proposer: str
    trials: int
    completed: int
    failed: int
    best: TrialRecord | None
    llm_calls: int
    tokens: int
    cost: float


def proposer_rows(stats: list[ProposerCounts], calls: list[LLMCallRecord]) -> list[ProposerRow]:
    """Which proposer found what: trials, outcomes, its best trial, and what its LLM calls cost."""
    by_name = {s.proposer: s for s in stats}
    rows = []
    for name in sorted(set(by_name) | {c.proposer for c in calls}):
        own = by_name.get(name, ProposerCounts(name, 0, 0, 0, None))
        mine = [c for c in calls if c.proposer == name]
        rows.append(
            ProposerRow(
                proposer=name,
                trials=own.trials,
                completed=own.completed,
                failed=own.failed,
                best=own.best,
                llm_calls=len(mine),
                tokens=sum(c.tokens for c in mine),
                cost=sum(c.cost for c in mine),
            )
        )
    return rows


def history_spec(trials: Sequence[TrialPoint]) -> dict[str, Any]:
    """Each scored trial's reward by trial number, per proposer, and the best feasible reward so far."""
    scored = sorted((t for t in trials if finite(t.reward) is not None), key=lambda t: t.number)
    traces: list[dict[str, Any]] = []
    for name in sorted({t.proposer for t in scored}):
        mine = [t for t in scored if t.proposer == name]
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": name,
                "x": [t.number for t in mine],
                "y": [t.reward for t in mine],
                "text": [f"trial {t.number} ({t.trainer})" for t in mine],
            }
        )
    best: float | None = None
    xs, ys = [], []
    for t in scored:
        if t.feasible is not False and (best is None or (t.reward is not None and t.reward > best)):
            best = t.reward
        if best is not None:
            xs.append(t.number)
            ys.append(best)
    traces.append(
        {"type": "scatter", "mode": "lines", "name": "best so far", "x": xs, "y": ys, "line": {"shape": "hv"}}
    )
    layout = {
        "title": {"text": "optimization history"},
        "xaxis": {"title": {"text": "trial"}},
        "yaxis": {"title": {"text": "reward"}},
        "height": 360,
        "margin": {"t": 40, "r": 10, "b": 40, "l": 50},
    }
    return {"data": traces, "layout": layout}


def _direction(spec: dict[str, Any], metric: str) -> float | None:
    """+1 when more of ``metric`` is better, -1 when less is, None when the console cannot tell."""
    custom = ((spec.get("objective") or {}).get("metrics") or {}).get(metric)
    if isinstance(custom, dict) and custom.get("direction") in ("maximize", "minimize"):
        return 1.0 if custom["direction"] == "maximize" else -1.0
    info = METRICS.get(metric)
    return None if info is None else (1.0 if info.direction == "maximize" else -1.0)


def pareto_axes(spec: dict[str, Any]) -> tuple[str, str, str] | None:
    """The primary metric against the first constrained metric, or else against the first other weighted
    metric; with why that one (None when the factory declares neither)."""
    objective = spec.get("objective") or {}
    metric = objective.get("metric")
    if metric is None:
        metric = "rmse" if spec.get("task") == "regression" else "accuracy"  # the task's default
    limits = [c.get("metric") for c in objective.get("constraints") or [] if isinstance(c, dict)]
    limits = [m for m in limits if isinstance(m, str) and m != metric]
    if limits:
        return str(metric), str(limits[0]), "the first constrained metric"
    weighted = [m for m in objective.get("weights") or {} if isinstance(m, str) and m != metric]
    if weighted:
        return str(metric), str(weighted[0]), "a weighted metric"
    return None


def pareto_of(trials: Sequence[TrialPoint], spec: dict[str, Any]) -> dict[str, Any] | None:
    axes = pareto_axes(spec)
    if axes is None:
        return None
    x, y, why = axes
    if not (spec.get("objective") or {}).get("metric") and not any(x in (t.metrics or {}) for t in trials):
        x = "rmse" if x == "accuracy" else "accuracy"  # the task was inferred from the data: the other default
    signs = (_direction(spec, x) or 1.0, _direction(spec, y) or 1.0)
    rows = [
        (f"trial {t.number} ({t.trainer})", finite((t.metrics or {}).get(x)), finite((t.metrics or {}).get(y)))
        for t in trials
        if t.state == "completed"
    ]
    spec_ = pareto_spec([(lab, a, b) for lab, a, b in rows if a is not None and b is not None], x, y, signs)
    spec_["layout"]["title"] = {"text": f"Pareto front: {x} against {y} ({why}), validation"}
    return spec_


def campaign_charts(trials: Sequence[TrialPoint], spec: dict[str, Any]) -> str:
    """The campaign page's charts as one JSON document, by the id of the element that draws each."""
    ranked = importances(trials)
    charts: dict[str, Any] = {
        "history": history_spec(trials),
        "importance": importance_spec(trials, ranked),
        "parallel": parallel_spec(trials, ranked),
    }
    pareto = pareto_of(trials, spec)
    if pareto is not None:
        charts["pareto"] = pareto
    for chart in charts.values():
        chart["layout"].setdefault("height", 360)
        chart["layout"].setdefault("margin", {"t": 40, "r": 10, "b": 40, "l": 60})
    return json.dumps(charts, default=str, allow_nan=False)


# -- trials -----------------------------------------------------------------------------------------


def llm_calls_of(store: Store, trial: TrialRecord) -> list[LLMCallRecord]:
    """The LLM calls whose answer became this trial's proposal."""
    if not trial.proposer.startswith("llm") and "llm" not in trial.proposer:
        return []
    return [c for c in store.list_llm_calls(campaign_id=trial.campaign_id) if trial.key in c.proposal_keys]


def diff_lines(diff: Any) -> list[tuple[str, str]]:
    """A unified diff as (css class, line) pairs, for highlighting added and removed lines."""
    if not isinstance(diff, str) or not diff:
        return []
    out = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            kind = "file"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        elif line.startswith("@@"):
            kind = "hunk"
        else:
            kind = "ctx"
        out.append((kind, line))
    return out


# -- model versions ---------------------------------------------------------------------------------


def sealed_test(version: ModelVersionRecord) -> dict[str, Any]:
    figures = version.metrics.get("sealed_test")
    return figures if isinstance(figures, dict) else {}


def model_card(registry: Registry, factory: str, version: ModelVersionRecord) -> str:
    """The version's model card as Markdown: what it is, how good on the sealed test, where it came from."""
    lineage = version.lineage
    test = sealed_test(version)
    lines = [
        f"# Model card: {factory} version {version.version}",
        "",
        f"- trainer: `{version.trainer}`",
        f"- registered: {version.created_at.isoformat()}",
        f"- aliases now: {', '.join(version.aliases) or '(none)'}",
        f"- artifact sha256: `{version.artifact_hash}`",
        f"- task: {lineage.get('task', '?')}, target `{lineage.get('target', '?')}`",
        f"- data fingerprint: `{lineage.get('data_fingerprint', '?')}`",
        f"- campaign {lineage.get('campaign', '?')}, trial id {version.trial_id}",
        "",
        "## Sealed-test figures",
        "",
    ]
    if test:
        lines.append(
            f"{test.get('metric', '?')}: {_fmt(test.get('score'))} "
            f"(95% interval {_fmt(test.get('low'))} to {_fmt(test.get('high'))})"
        )
    else:
        lines.append("(none recorded)")
    gate = lineage.get("gate") or {}
    lines += ["", "## Gate verdict", "", str(gate.get("reason", "(none recorded)")), "", "## Validation metrics", ""]
    lines += [f"- {k}: {_fmt(v)}" for k, v in sorted((version.metrics.get("valid") or {}).items())]
    lines += ["", "## Parameters", ""]
    lines += [f"- {k}: `{v}`" for k, v in sorted(version.params.items())]
    proposal = lineage.get("proposal") or {}
    lines += [
        "",
        "## Lineage",
        "",
        f"- proposer: {proposal.get('proposer', '?')} ({proposal.get('reason', '')})",
        f"- parent versions: {', '.join(map(str, lineage.get('parents') or [])) or '(none)'}",
        f"- features: {', '.join(map(str, lineage.get('features') or []))}",
        "",
        "## Packages",
        "",
    ]
    lines += [f"- {k} {v}" for k, v in sorted((lineage.get("packages") or {}).items())]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Node:
    x: int
    y: int
    kind: str  # data, proposal, trial, gate, registered, alias
    title: str
    lines: tuple[str, ...]
    full: str  # the untruncated text, shown as the node's tooltip
    href: str | None = None


@dataclass(frozen=True)
class Graph:
    width: int
    height: int
    nodes: tuple[Node, ...]
    edges: tuple[tuple[int, int, int, int], ...]  # x1, y1, x2, y2 (box edge to box edge)


NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 200, 76, 36, 40, 12
LINE_CHARS = 27
GRAPH_MOVES = 8  # alias moves drawn at most, the latest (the table below lists them all)


def _short(text: Any, n: int = LINE_CHARS) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= n else s[: n - 1] + "\u2026"


def lineage_graph(factory: str, version: ModelVersionRecord, moves: list[Any]) -> Graph:
    """The version's lineage as boxes and arrows: data fingerprint, proposal, trial, gate verdict (with the
    sealed-test interval), registration, then each alias move in the order it happened."""
    lineage = version.lineage
    proposal = lineage.get("proposal") or {}
    gate = lineage.get("gate") or {}
    test = sealed_test(version)
    fingerprint = str(lineage.get("data_fingerprint", "?"))
    interval = (
        f"{test.get('metric', '?')} {_fmt(test.get('score'))} [{_fmt(test.get('low'))}, {_fmt(test.get('high'))}]"
        if test
        else "no sealed-test figure"
    )
    delta = finite(gate.get("delta"))
    chain = [
        (
            "data",
            "data",
            (f"fingerprint {fingerprint[:12]}", f"{lineage.get('task', '?')}, target {lineage.get('target', '?')}"),
            fingerprint,
            None,
        ),
        (
            "proposal",
            "proposal",
            (f"by {proposal.get('proposer', '?')}", _short(proposal.get("reason", ""))),
            str(proposal.get("reason", "")),
            None,
        ),
        (
            "trial",
            "trial",
            (f"trial id {version.trial_id}", f"campaign {lineage.get('campaign', '?')}"),
            f"trial {version.trial_id}",
            f"/trials/{version.trial_id}" if version.trial_id else None,
        ),
        (
            "gate",
            "gate verdict",
            (interval, f"delta {_fmt(delta)}" if delta is not None else _short(gate.get("reason", "none recorded"))),
            str(gate.get("reason", "none recorded")),
            None,
        ),
        (
            "registered",
            f"version {version.version}",
            (f"registered {version.created_at:%Y-%m-%d %H:%M}", _short(version.trainer)),
            f"artifact {version.artifact_hash}",
            None,
        ),
    ]
    nodes = [
        Node(PAD + i * (NODE_W + GAP_X), PAD, kind, title, lines, full, href)
        for i, (kind, title, lines, full, href) in enumerate(chain)
    ]
    per_row = len(chain)
    for i, e in enumerate(moves):  # a snake under the chain: right to left below it, then left to right
        row, j = 1 + i // per_row, i % per_row
        col = per_row - 1 - j if row % 2 else j
        alias = e.data.get("alias", "")
        what = f"{e.kind} {alias}".strip()
        was = e.data.get("previous")
        nodes.append(
            Node(
                PAD + col * (NODE_W + GAP_X),
                PAD + row * (NODE_H + GAP_Y),
                "alias",
                _short(what, 26),
                (f"{e.created_at:%Y-%m-%d %H:%M}", f"was version {was}" if was is not None else _short(e.reason)),
                f"{what}: {e.reason}",
            )
        )
    rows = 1 + math.ceil(len(moves) / per_row)
    return Graph(
        width=2 * PAD + per_row * NODE_W + (per_row - 1) * GAP_X,
        height=2 * PAD + rows * NODE_H + (rows - 1) * GAP_Y,
        nodes=tuple(nodes),
        edges=tuple(_edge(a, b) for a, b in zip(nodes, nodes[1:], strict=False)),
    )


def _edge(a: Node, b: Node) -> tuple[int, int, int, int]:
    """An arrow from box ``a`` to box ``b``: side to side on one row, bottom to top between rows."""
    if a.y == b.y:
        y = a.y + NODE_H // 2
        return (a.x + NODE_W, y, b.x, y) if b.x > a.x else (a.x, y, b.x + NODE_W, y)
    return (a.x + NODE_W // 2, a.y + NODE_H, b.x + NODE_W // 2, b.y)


def _fmt(x: Any) -> str:
    f = finite(x)
    return f"{f:.4g}" if f is not None else str(x)


# -- monitor ----------------------------------------------------------------------------------------


def monitor_chart(windows: list[Any]) -> str:
    """Drift share and live quality per window, the champion's sealed-test score as the reference."""
    xs = [w.closed_at.isoformat() for w in windows]
    traces: list[dict[str, Any]] = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": "drift share",
            "x": xs,
            "y": [w.share_drifted for w in windows],
        }
    ]
    quality = [finite((w.quality or {}).get("value")) for w in windows]
    if any(q is not None for q in quality):
        traces.append(
            {"type": "scatter", "mode": "lines+markers", "name": "live quality", "x": xs, "y": quality, "yaxis": "y2"}
        )
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": "sealed-test score",
                "x": xs,
                "y": [finite((w.quality or {}).get("champion")) for w in windows],
                "yaxis": "y2",
                "line": {"dash": "dot"},
            }
        )
    layout = {
        "title": {"text": "monitor windows"},
        "yaxis": {"title": {"text": "share of features drifted"}, "range": [0, 1]},
        "yaxis2": {"title": {"text": "quality"}, "overlaying": "y", "side": "right"},
        "height": 360,
        "margin": {"t": 40, "r": 60, "b": 40, "l": 60},
    }
    return chart_json(traces, layout)


def drifted_columns(window: Any, top: int = 8) -> list[str]:
    cols = (window.drift or {}).get("columns") or []
    return [str(c.get("column")) for c in cols if isinstance(c, dict) and c.get("drifted")][:top]


# -- audit ------------------------------------------------------------------------------------------


class ChainCache:
    """The audit chain's verification, run in the background so no page waits long for it.

    A check starts when the log has grown or the last one is ``max_age_s`` old (an edit to an old event
    does not grow the log, and must still show within that time), and never two at once. A page waits up
    to ``wait_s`` for a check it started (enough for a small store), then shows the latest finished one.
    """

    def __init__(self, max_age_s: float = 60.0, wait_s: float = 0.25) -> None:
        self._lock = threading.Lock()
        self._max_age_s = max_age_s
        self._wait_s = wait_s
        self._head = -1
        self._at = 0.0
        self._report: ChainReport | None = None
        self._running: threading.Thread | None = None

    def report(self, store: Store) -> tuple[ChainReport | None, float]:
        """The latest finished check (None before the first) and how many seconds ago it started."""
        newest = store.list_events(limit=1)
        head = newest[-1].id if newest else 0
        with self._lock:
            stale = self._report is None or head != self._head or time.monotonic() - self._at > self._max_age_s
            if stale and self._running is None:
                self._running = threading.Thread(target=self._check, args=(store, head), daemon=True)
                self._running.start()
            running = self._running
        if running is not None:
            running.join(self._wait_s)
        with self._lock:
            return self._report, time.monotonic() - self._at

    def _check(self, store: Store, head: int) -> None:
        started = time.monotonic()
        report = None
        try:
            report = store.verify_chain()
        except DarkfabError as exc:  # the page says so, rather than showing an old good result
            report = ChainReport(ok=False, checked=0, first_bad_id=None, message=f"could not verify: {exc}")
        finally:
            with self._lock:
                if report is not None:
                    self._report, self._head, self._at = report, head, started
                self._running = None
