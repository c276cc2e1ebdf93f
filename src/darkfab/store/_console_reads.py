"""Reads for the oversight console over a campaign of thousands of trials: one page, per-proposer figures,
and the few columns the campaign's charts need, each one query, never every full trial record.

Functions over a :class:`Store` rather than methods, so the console's needs stay out of the Store class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ._base import one_of
from ._records import TrialRecord
from ._schema import evaluations, proposals, trials
from ._sql import TRIAL_SELECT, trial_record
from ._store import Store

TRIAL_SORTS = ("number", "reward", "value", "state", "proposer", "trainer", "wall")
_JOINED = trials.join(proposals, proposals.c.id == trials.c.proposal_id).outerjoin(
    evaluations, evaluations.c.trial_id == trials.c.id
)


def _sort_column(key: str) -> Any:
    one_of(key, TRIAL_SORTS, "a trial sort key")
    return {
        "number": trials.c.number,
        "reward": evaluations.c.reward,
        "value": evaluations.c.value,
        "state": trials.c.state,
        "proposer": proposals.c.proposer,
        "trainer": proposals.c.trainer,
        "wall": trials.c.resources["wall_seconds"].as_float(),
    }[key]


def trial_page(
    store: Store, campaign_id: int, *, sort: str, descending: bool, offset: int, limit: int
) -> list[TrialRecord]:
    """``limit`` trials of the campaign from ``offset`` in ``sort`` order; trials without that figure go last
    whichever the direction, ties by trial number."""
    col = _sort_column(sort)
    query = (
        TRIAL_SELECT.where(trials.c.campaign_id == campaign_id)
        .order_by(col.is_(None), col.desc() if descending else col.asc(), trials.c.number)
        .offset(offset)
        .limit(limit)
    )
    with store._read("read a page of trials") as conn:
        return [trial_record(r) for r in conn.execute(query)]


@dataclass(frozen=True)
class ProposerCounts:
    proposer: str
    trials: int
    completed: int
    failed: int
    best: TrialRecord | None  # the highest reward among its trials not known to be infeasible


def proposer_counts(store: Store, campaign_id: int) -> list[ProposerCounts]:
    """Each proposer's trials, outcomes and best trial (ties: the earliest), by proposer name; two queries."""
    eligible = sa.and_(
        evaluations.c.reward.is_not(None),
        sa.or_(evaluations.c.feasible.is_(None), evaluations.c.feasible.is_(True)),
    )
    counts = (
        sa.select(
            proposals.c.proposer,
            sa.func.count(),
            sa.func.sum(sa.case((trials.c.state == "completed", 1), else_=0)),
            sa.func.sum(sa.case((trials.c.state == "failed", 1), else_=0)),
            sa.func.max(sa.case((eligible, evaluations.c.reward), else_=None)),
        )
        .select_from(_JOINED)
        .where(trials.c.campaign_id == campaign_id)
        .group_by(proposals.c.proposer)
        .order_by(proposals.c.proposer)
    )
    with store._read("count trials by proposer") as conn:
        rows = conn.execute(counts).all()
        tops = {r[4] for r in rows if r[4] is not None}
        best: dict[str, TrialRecord] = {}
        if tops:
            query = TRIAL_SELECT.where(
                trials.c.campaign_id == campaign_id, eligible, evaluations.c.reward.in_(sorted(tops))
            ).order_by(trials.c.id)
            top_of = {r[0]: r[4] for r in rows}
            for row in conn.execute(query):
                if row.proposer not in best and row.reward == top_of.get(row.proposer):
                    best[row.proposer] = trial_record(row)
    return [ProposerCounts(name, n, done or 0, failed or 0, best.get(name)) for name, n, done, failed, _ in rows]


@dataclass(frozen=True)
class TrialPoint:
    """What the campaign's charts need of one trial."""

    id: int
    number: int
    state: str
    proposer: str
    trainer: str
    params: dict[str, Any]
    value: float | None
    reward: float | None
    feasible: bool | None
    metrics: dict[str, Any] | None


def trial_points(store: Store, campaign_id: int) -> list[TrialPoint]:
    """Every trial of the campaign, by number, with only the columns the charts draw."""
    query = (
        sa.select(
            trials.c.id,
            trials.c.number,
            trials.c.state,
            proposals.c.proposer,
            proposals.c.trainer,
            proposals.c.params,
            evaluations.c.value,
            evaluations.c.reward,
            evaluations.c.feasible,
            evaluations.c.metrics,
        )
        .select_from(_JOINED)
        .where(trials.c.campaign_id == campaign_id)
        .order_by(trials.c.number)
    )
    with store._read("read the campaign's chart points") as conn:
        return [TrialPoint(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9]) for r in conn.execute(query)]
