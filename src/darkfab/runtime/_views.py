"""Record to view: the frozen shapes the store's records take when a proposer, a table or a reader sees them."""

from __future__ import annotations

import math
from typing import Any

from ..evaluate import Evaluation
from ..events import EventKind
from ..propose import Proposal, TrialView
from ..results import TrialRow
from ..store import Store, TrialRecord


def trial_view(t: TrialRecord, objective_names: tuple[str, ...]) -> TrialView:
    """What a proposer may see of a trial (never a sealed-test figure)."""
    metrics = t.metrics or {}
    values = None
    if t.state == "completed" and len(objective_names) > 1:
        values = tuple(float(metrics.get(n, math.nan)) for n in objective_names)
    return TrialView(
        **_outcome(t),
        values=values,
        intermediate={int(k): float(v) for k, v in (t.intermediate or {}).items()},
        metrics=dict(t.metrics or {}),
        seconds=(t.resources or {}).get("wall_seconds"),
        patch=t.patch,
    )


def row_of(t: TrialRecord) -> TrialRow:
    """A leaderboard row."""
    return TrialRow(**_outcome(t), number=t.number)


def _outcome(t: TrialRecord) -> dict[str, Any]:
    """What every view of a trial carries: who proposed what, and how it ended."""
    return {
        "trial_id": t.id,
        "proposer": t.proposer,
        "trainer": t.trainer,
        "params": dict(t.params),
        "state": t.state,
        "value": t.value,
        "reward": t.reward,
        "feasible": t.feasible,
        "error": t.error,
    }


def proposal_of(t: TrialRecord) -> Proposal:
    """The proposal a stored trial came from (for a proposer told of a trial it did not start)."""
    return Proposal(
        proposer=t.proposer,
        trainer=t.trainer,
        params=dict(t.params),
        reason=t.reason,
        key=t.key,
        parents=tuple(t.parents),
        patch=t.patch,
    )


def board_key(row: TrialRow) -> tuple[float, float, float]:
    """Leaderboard order: completed, then feasible, then reward."""
    done = 1.0 if row.state == "completed" else 0.0
    return (done, 1.0 if row.feasible else 0.0, row.reward if row.reward is not None else -math.inf)


def breakdown(e: Evaluation) -> dict[str, Any]:
    """The reward's terms and violations as the store keeps them."""
    return {"terms": e.breakdown, "violations": list(e.violations), "reward": e.reward, "feasible": e.feasible}


def completed_reason(metric: str, e: Evaluation) -> str:
    """The reason recorded on a completed trial's event."""
    text = f"valid {metric} = {e.value:.4f}, reward {e.reward:.4f}"
    if not e.feasible:
        text += "; infeasible: " + "; ".join(e.violations)
    return text


def flagged_of(store: Store, campaign_id: int) -> list[dict[str, Any]]:
    """The candidates this campaign's gate kept out, with each suspicion and its figures."""
    return [
        {"trial": e.trial_id, "suspicions": e.data.get("suspicions", [])}
        for e in store.list_events(campaign_id=campaign_id, kinds=(EventKind.CANDIDATE_FLAGGED,))
    ]
