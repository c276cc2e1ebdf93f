"""Pausing a factory (`darkfab pause-factory`): a person's switch that stops new trials, kept as events in the chained log.

A pause is the event ``factory_paused`` and its end the event ``factory_resumed``; the factory is paused
when the newer of the two is a ``factory_paused``. So who paused it, when and why is audited like every
other decision, survives restarts, and is seen by every process on the store; no table is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ..errors import StoreError
from ..events import EventKind

if TYPE_CHECKING:
    from ._store import Store

PAUSED = EventKind.FACTORY_PAUSED
RESUMED = EventKind.FACTORY_RESUMED
MAX_REASON = 500
MAX_PERSON = 80


@dataclass(frozen=True)
class PauseRecord:
    """A factory's pause: who paused it, why, and since when (the ``factory_paused`` event)."""

    factory_id: int
    person: str
    reason: str
    since: datetime
    event_id: int

    def explain(self, factory: str) -> str:
        """The pause as an error message: who, since when, why, and the fix."""
        return (
            f"factory {factory!r} is paused (by {self.person} at {self.since:%Y-%m-%d %H:%M:%S} UTC: {self.reason}); "
            f"no new trials start while it is paused; fix: `darkfab resume-factory {factory}` when it may run again"
        )


def checked_text(value: str | None, *, what: str, option: str, limit: int) -> str:
    """``value`` with its whitespace folded; StoreError naming the value, the rule and the fix when it is
    empty or longer than ``limit``."""
    text = " ".join((value or "").split())
    if not text:
        raise StoreError(f"{what} is required and was {value!r}: every lever is recorded with it; fix: {option}")
    if len(text) > limit:
        raise StoreError(f"{what} is {len(text)} characters long; the limit is {limit}; fix: shorten it")
    return text


class Pauses:
    """Pause, resume and read the pause of the factories of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def state(self, factory_id: int) -> PauseRecord | None:
        """The factory's pause, or None when it is not paused."""
        # every pause event of the store (a person's, so few) through the kind index: filtering on the factory
        # in SQL makes SQLite walk all the factory's events instead (20 ms at 60,000 events, against 0.5 ms)
        found = [e for e in self.store.list_events(kinds=(PAUSED, RESUMED)) if e.factory_id == factory_id]
        if not found or found[-1].kind != PAUSED:
            return None
        e = found[-1]
        return PauseRecord(
            factory_id=factory_id,
            person=str(e.data.get("person", "")),
            reason=str(e.data.get("reason", e.reason)),
            since=e.created_at,
            event_id=e.id,
        )

    def pause(self, factory_id: int, *, person: str, reason: str) -> PauseRecord:
        """Pause the factory (event ``factory_paused``); StoreError when it is paused already."""
        person = checked_text(person, what="the person", option="give your name", limit=MAX_PERSON)
        reason = checked_text(reason, what="the reason", option="say why, e.g. --reason 'bad data'", limit=MAX_REASON)
        held = self.state(factory_id)
        if held is not None:
            raise StoreError(
                f"factory {self._name(factory_id)!r} is already paused (by {held.person} at "
                f"{held.since:%Y-%m-%d %H:%M:%S} UTC: {held.reason}); fix: resume it first to pause it anew"
            )
        e = self.store.append_event(
            kind=PAUSED,
            reason=f"paused by {person}: {reason}; no new trials start until it is resumed",
            factory_id=factory_id,
            data={"person": person, "reason": reason},
        )
        return PauseRecord(factory_id=factory_id, person=person, reason=reason, since=e.created_at, event_id=e.id)

    def resume(self, factory_id: int, *, person: str, reason: str) -> PauseRecord:
        """End the factory's pause (event ``factory_resumed``) and return the pause it ended; StoreError when
        it is not paused."""
        person = checked_text(person, what="the person", option="give your name", limit=MAX_PERSON)
        reason = checked_text(reason, what="the reason", option="say why, e.g. --reason 'data fixed'", limit=MAX_REASON)
        held = self.state(factory_id)
        if held is None:
            raise StoreError(
                f"factory {self._name(factory_id)!r} is not paused, so there is nothing to resume; "
                f"fix: check the name, or pause it with `darkfab pause-factory {self._name(factory_id)} --reason ...`"
            )
        self.store.append_event(
            kind=RESUMED,
            reason=f"resumed by {person}: {reason} (paused by {held.person}: {held.reason})",
            factory_id=factory_id,
            data={"person": person, "reason": reason, "paused_by": held.person, "pause_event": held.event_id},
        )
        return held

    def _name(self, factory_id: int) -> str:
        names = {f.id: f.name for f in self.store.list_factories()}
        return names.get(factory_id, str(factory_id))
