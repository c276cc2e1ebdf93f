"""The console's read-only pages: factories, campaign, trial, model version, monitor, timeline."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from ..errors import NotFoundError
from ..plots import IMPORTANCE_METHOD
from ..registry import APPROVAL_REQUESTED, APPROVED, PENDING, REJECTED
from ..store import proposer_counts, trial_page, trial_points
from . import _views as v
from ._app import Console

router = APIRouter()
MOVES = ("alias_set", "alias_deleted", "registered", APPROVAL_REQUESTED, APPROVED, REJECTED)


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


ConsoleDep = Annotated[Console, Depends(console_of)]


@router.get("/", response_class=HTMLResponse)
def factories(request: Request, c: ConsoleDep) -> HTMLResponse:
    rows = [v.factory_row(c.store, f) for f in c.store.list_factories()]
    return c.page(request, "factories.html", rows=rows)


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse)
def campaign(
    request: Request,
    c: ConsoleDep,
    campaign_id: int,
    sort: Annotated[str, Query()] = "reward",
    order: Annotated[str, Query()] = "desc",
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query()] = 50,
) -> HTMLResponse:
    if sort not in v.SORT_KEYS:
        sort = "reward"
    if order not in ("asc", "desc"):
        order = "desc"
    if size not in v.PAGE_SIZES:
        size = 50
    record = c.store.get_campaign(campaign_id)
    factory = v.factory_by_id(c.store, record.factory_id)
    head = c.campaigns.head(c.store, campaign_id)
    counts = c.campaigns.get(campaign_id, head, "counts", lambda: c.store.count_trials(campaign_id))
    total = sum(counts.values())
    pages = max(1, math.ceil(total / size))
    page = min(page, pages)
    shown = c.campaigns.get(
        campaign_id,
        head,
        ("page", sort, order, page, size),
        lambda: trial_page(
            c.store, campaign_id, sort=sort, descending=order == "desc", offset=(page - 1) * size, limit=size
        ),
    )
    by_proposer = c.campaigns.get(campaign_id, head, "proposers", lambda: proposer_counts(c.store, campaign_id))
    calls = c.store.list_llm_calls(campaign_id=campaign_id)
    return c.page(
        request,
        "campaign.html",
        factory=factory,
        campaign=record,
        counts=counts,
        spend=v.spend_of(c.store, factory, record, counts),
        trials=shown,
        total=total,
        sort=sort,
        order=order,
        page=page,
        pages=pages,
        size=size,
        sizes=v.PAGE_SIZES,
        sort_keys=v.SORT_KEYS,
        proposers=v.proposer_rows(by_proposer, calls),
        pareto=v.pareto_axes(factory.spec),
        importance_method=IMPORTANCE_METHOD,
    )


@router.get("/campaigns/{campaign_id}/charts.json")
def campaign_charts(c: ConsoleDep, campaign_id: int) -> Response:
    """The campaign page's charts, drawn by the page once it has loaded (cached per campaign state)."""
    record = c.store.get_campaign(campaign_id)
    factory = v.factory_by_id(c.store, record.factory_id)
    head = c.campaigns.head(c.store, campaign_id)
    body = c.campaigns.get(
        campaign_id, head, "charts", lambda: v.campaign_charts(trial_points(c.store, campaign_id), factory.spec)
    )
    return Response(body, media_type="application/json", headers={"cache-control": "no-store"})


@router.get("/trials/{trial_id}", response_class=HTMLResponse)
def trial(request: Request, c: ConsoleDep, trial_id: int) -> HTMLResponse:
    record = c.store.get_trial(trial_id)
    factory = v.factory_by_id(c.store, record.factory_id)
    breakdown = record.breakdown or {}
    return c.page(
        request,
        "trial.html",
        factory=factory,
        trial=record,
        params=record.params,
        terms=breakdown.get("terms") or {},
        violations=breakdown.get("violations") or [],
        diff=v.diff_lines(record.patch.diff if record.patch is not None else None),
        calls=v.llm_calls_of(c.store, record),
    )


@router.get("/factories/{name}/versions/{version}", response_class=HTMLResponse)
def version(request: Request, c: ConsoleDep, name: str, version: int) -> HTMLResponse:
    factory = c.store.get_factory(name)
    record = c.registry.get(name, version)
    lineage = c.registry.lineage(name, version)
    held = c.registry.aliases(name)
    moves = [
        e
        for e in c.store.list_events(factory_id=factory.id, kinds=MOVES)
        if e.data.get("version") == version or e.data.get("previous") == version
    ]
    return c.page(
        request,
        "version.html",
        factory=factory,
        version=record,
        test=v.sealed_test(record),
        lineage=lineage,
        moves=moves,
        graph=v.lineage_graph(name, record, sorted(moves, key=lambda e: e.id)[-v.GRAPH_MOVES :]),
        params=record.params,
        versions=c.registry.versions(name),
        champion=held.get("champion"),
        pending=held.get(PENDING),
    )


@router.get("/factories/{name}/versions/{version}/card.md")
def card(c: ConsoleDep, name: str, version: int) -> PlainTextResponse:
    record = c.registry.get(name, version)
    return PlainTextResponse(
        v.model_card(c.registry, name, record),
        media_type="text/markdown; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}-v{version}.md"'},
    )


@router.get("/factories/{name}/monitor", response_class=HTMLResponse)
def monitor(request: Request, c: ConsoleDep, name: str) -> HTMLResponse:
    factory = c.store.get_factory(name)
    windows = c.store.list_monitor_windows(factory.id, limit=500)
    triggers = [
        e
        for e in c.store.list_events(factory_id=factory.id, kinds=("campaign_started",), limit=200)
        if e.data.get("trigger") not in (None, "first")
    ]
    return c.page(
        request,
        "monitor.html",
        factory=factory,
        windows=list(reversed(windows)),
        chart=v.monitor_chart(windows),
        drifted=v.drifted_columns,
        triggers=triggers,
    )


@router.get("/timeline", response_class=HTMLResponse)
def timeline(
    request: Request,
    c: ConsoleDep,
    factory: Annotated[str, Query()] = "",
    kind: Annotated[str, Query()] = "",
    limit: Annotated[int, Query()] = 200,
) -> HTMLResponse:
    if limit not in v.EVENT_LIMITS:
        limit = 200
    factories = c.store.list_factories()
    factory_id = None
    if factory:
        chosen = [f for f in factories if f.name == factory]
        if not chosen:
            names = ", ".join(f.name for f in factories) or "(none)"
            raise NotFoundError(f"no factory {factory!r} in the store; fix: choose one of {names}")
        factory_id = chosen[0].id
    kinds = tuple(k.strip() for k in kind.split(",") if k.strip()) or None
    events = c.store.list_events(factory_id=factory_id, kinds=kinds, limit=limit)
    report, age = c.chain.report(c.store)
    return c.page(
        request,
        "timeline.html",
        events=list(reversed(events)),
        factories=factories,
        names={f.id: f.name for f in factories},
        factory=factory,
        kind=kind,
        limit=limit,
        limits=v.EVENT_LIMITS,
        chain=report,
        chain_age=age,
    )
