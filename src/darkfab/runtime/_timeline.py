"""The timeline: what happened to a factory and why, rebuilt from the store's events alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..events import EventKind
from ..store import Store

LIFECYCLE_KINDS: tuple[str, ...] = (
    EventKind.LIFECYCLE_SERVING_STARTED,
    EventKind.LIFECYCLE_SERVING_STOPPED,
    EventKind.LIFECYCLE_RETRAIN_STARTED,
    EventKind.LIFECYCLE_RETRAIN_FINISHED,
    EventKind.LIFECYCLE_RETRAIN_FAILED,
    EventKind.LIFECYCLE_TRIGGER_IGNORED,
    EventKind.LIFECYCLE_NOTE,
)
TIMELINE_KINDS: tuple[str, ...] = (
    EventKind.CAMPAIGN_STARTED,
    EventKind.CAMPAIGN_RESUMED,
    EventKind.CAMPAIGN_FINISHED,
    EventKind.GATE_VERDICT,
    EventKind.REGISTERED,
    EventKind.ALIAS_SET,
    EventKind.ALIAS_DELETED,
    EventKind.CHALLENGER_PROMOTED,
    EventKind.CHALLENGER_ROLLED_BACK,
    EventKind.DRIFT_DETECTED,
    EventKind.QUALITY_DECAY,
    EventKind.SERVING_PAUSED,
    EventKind.SERVING_RESUMED,
    *LIFECYCLE_KINDS,
)


@dataclass(frozen=True)
class Step:
    """One line of the timeline: when, what, and why (the event's own reason)."""

    at: datetime
    kind: str
    reason: str
    campaign: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    event: int = 0  # the event's id in the store

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "kind": self.kind, "reason": self.reason, "campaign": self.campaign}


def timeline(store: Store, factory: str, *, since: datetime | None = None, after_event: int = 0) -> list[Step]:
    """What happened to ``factory`` and why, oldest first, read from the store's events.

    Trial-level events are left out; ``since`` (aware datetime) or ``after_event`` (an event id) cut the start.
    """
    fid = store.get_factory(factory).id
    numbers = {c.id: c.number for c in store.list_campaigns(fid)}
    steps = []
    for e in store.list_events(factory_id=fid, kinds=TIMELINE_KINDS, after_id=after_event):
        if since is not None and _aware(e.created_at) < since:
            continue
        number = numbers.get(e.campaign_id) if e.campaign_id is not None else None
        steps.append(Step(_aware(e.created_at), e.kind, e.reason, number, dict(e.data), e.id))
    return steps


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)


def last_event_id(store: Store) -> int:
    """The id of the newest event in the store (0 when empty): a mark to cut a timeline after."""
    found = store.list_events(limit=1)
    return found[-1].id if found else 0
