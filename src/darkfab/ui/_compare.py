"""The console's preference questions: the pair a factory wants answered (the same pair `darkfab compare`
asks), side by side as report cards, and a form that records a logged-in person's answer as a preference
(source ``person:NAME``, the reason as its rationale; one chained ``preference_recorded`` event), then shows
the next pair. The learned reward (:mod:`darkfab.runtime`) reads these preferences like the CLI's."""

from __future__ import annotations

import math
from collections import Counter
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..errors import NotFoundError
from ..evaluate import RewardModel
from ..runtime import Factory, declared_reward, next_pair, prefer, report_card, stored_spec
from ..store import TrialRecord
from ._actions import MAX_REASON
from ._app import Console
from ._auth import FormDep, check_action
from ._pages import ConsoleDep

router = APIRouter()
WINNERS = ("a", "b", "tie")  # as `darkfab prefer` takes them (it also reads 1, 2, =)
RECENT = 8  # the newest answers the page lists


def _factory(c: Console, name: str) -> Factory:
    return Factory(stored_spec(c.store, name), store=c.store)


def _card(trial: TrialRecord, reward: RewardModel) -> dict[str, Any]:
    """The CLI's report card, plus the declared reward's terms (value, utility, weight, contribution)."""
    card = report_card(trial, reward)
    card["terms"] = reward.evaluate(trial.metrics or {}).breakdown
    card["number"] = trial.number
    return card


def _gaps(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    """How much each metric differs between the two, relative to the larger (what differs most)."""
    out: dict[str, float] = {}
    for m in sorted(set(a["metrics"]) | set(b["metrics"])):
        x, y = a["metrics"].get(m, math.nan), b["metrics"].get(m, math.nan)
        finite = isinstance(x, (int, float)) and isinstance(y, (int, float)) and math.isfinite(x) and math.isfinite(y)
        out[m] = abs(x - y) / max(abs(x), abs(y), 1e-12) if finite else math.nan
    return out


def _skipped(skip: list[str]) -> set[tuple[int, int]]:
    """Pairs the person skipped (``A-B`` in the address); anything else is ignored."""
    out: set[tuple[int, int]] = set()
    for s in skip[:200]:
        a, _, b = s.partition("-")
        if a.isdigit() and b.isdigit():
            out.add((int(a), int(b)))
    return out


@router.get("/factories/{name}/compare", response_class=HTMLResponse)
def compare(
    request: Request, c: ConsoleDep, name: str, skip: Annotated[list[str] | None, Query()] = None
) -> HTMLResponse:
    """The next pair to answer, the answers so far (by person and by judge) and the form."""
    factory = _factory(c, name)
    record = c.store.get_factory(name)
    skipped = _skipped(skip or [])
    reward = declared_reward(factory)
    pair = next_pair(factory, asked=skipped, reward=reward)
    cards = None
    if pair is not None:
        cards = (_card(pair[0], reward), _card(pair[1], reward))
    prefs = c.store.list_preferences(record.id)
    by_kind = Counter(p.source.partition(":")[0] for p in prefs)
    return c.page(
        request,
        "compare.html",
        factory=record,
        cards=cards,
        gaps=_gaps(*cards) if cards else {},
        skip=sorted(skipped),
        by_person=by_kind.get("person", 0),
        by_judge=by_kind.get("judge", 0),
        effective=len(c.store.list_preferences(record.id, effective=True)),
        recent=list(reversed(prefs))[:RECENT],
    )


def _trial_of(c: Console, form: dict[str, str], field: str, factory_id: int, name: str) -> int:
    raw = form.get(field, "").strip()
    if not raw.isdigit():
        raise HTTPException(400, f"{field} must be a trial id, got {raw!r:.40}; fix: answer the pair the page shows")
    trial_id = int(raw)
    try:
        trial = c.store.get_trial(trial_id)
    except NotFoundError:
        trial = None
    if trial is None or trial.factory_id != factory_id or trial.state != "completed" or not trial.metrics:
        raise HTTPException(
            400,
            f"{field}: trial {trial_id} is not a completed, evaluated trial of factory {name!r}; "
            "fix: answer the pair the page shows",
        )
    return trial_id


def _reason(form: dict[str, str]) -> str:
    """The reason is optional, as with `darkfab prefer --reason`; kept on record when given."""
    value = " ".join(form.get("reason", "").split())
    if len(value) > MAX_REASON:
        raise HTTPException(400, f"the reason is {len(value)} characters long; fix: keep it under {MAX_REASON}")
    return value


@router.post("/factories/{name}/compare")
def answer(request: Request, c: ConsoleDep, name: str, form: FormDep) -> Response:
    """Record the logged-in person's answer about one pair (``winner``: a, b or tie), then ask the next."""
    session = check_action(c.sessions, request, form)
    record = c.store.get_factory(name)
    winner = form.get("winner", "")
    if winner not in WINNERS:
        raise HTTPException(400, f"winner must be one of {', '.join(WINNERS)}; got {winner!r:.40}")
    trial_a = _trial_of(c, form, "trial_a", record.id, name)
    trial_b = _trial_of(c, form, "trial_b", record.id, name)
    if trial_a == trial_b:
        raise HTTPException(400, f"trial_a and trial_b are both trial {trial_a}; fix: compare two different trials")
    reason = _reason(form)
    prefer(_factory(c, name), trial_a, trial_b, winner, source=f"person:{session.person}", rationale=reason)
    return RedirectResponse(f"/factories/{quote(name)}/compare", status_code=303)
