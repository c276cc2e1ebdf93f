"""Preferences: a person or an AI judge says which of two trials is the better model, and why.

Each preference is a decision that teaches the reward, so it is stored with its chained event
(``preference_recorded``). The candidates are trials of one factory (a model version is its trial's
candidate too). A person's preference outranks a judge's on the same pair: readers take a person's answer
where both exist (:meth:`Store.list_preferences` with ``effective=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..errors import NotFoundError, StoreError
from ..events import EventKind
from ..redact import redact
from ._base import Repository, inserted_id
from ._codec import normalize
from ._schema import campaigns, evaluations, preferences, trials

PREFERENCE_WINNERS: tuple[str, ...] = ("a", "b", "tie")


@dataclass(frozen=True)
class PreferenceRecord:
    """``winner`` is ``"a"``, ``"b"`` or ``"tie"``; ``source`` is ``person:NAME`` or ``judge:MODEL``."""

    id: int
    factory_id: int
    trial_a: int
    trial_b: int
    winner: str
    source: str
    rationale: str
    created_at: datetime

    @property
    def by_person(self) -> bool:
        return self.source.startswith("person:")


def _check_source(source: str) -> str:
    kind, _, who = source.partition(":")
    if kind not in ("person", "judge") or not who.strip() or len(source) > 200:
        raise StoreError(
            f"a preference's source must be 'person:NAME' or 'judge:MODEL' (at most 200 characters), got {source!r:.80}"
        )
    return source


class Preferences(Repository):
    """The ``preferences`` table."""

    def add_preference(
        self, factory_id: int, *, trial_a: int, trial_b: int, winner: str, source: str, rationale: str = ""
    ) -> PreferenceRecord:
        """Record that ``winner`` (``a``, ``b`` or ``tie``) of two trials of the factory is better; one event."""
        if winner not in PREFERENCE_WINNERS:
            raise StoreError(f"a preference's winner must be one of {', '.join(PREFERENCE_WINNERS)}; got {winner!r}")
        if trial_a == trial_b:
            raise StoreError(f"a preference compares two different trials; got trial {trial_a} twice")
        _check_source(source)
        rationale = redact(str(rationale), self._base._secrets())  # a judge's critique may quote what it was shown
        now = self._base.clock()
        with self._base._write(f"record a preference between trials {trial_a} and {trial_b}") as conn:
            query = (
                sa.select(trials.c.id)
                .join(campaigns, campaigns.c.id == trials.c.campaign_id)
                .where(trials.c.id.in_([trial_a, trial_b]), campaigns.c.factory_id == factory_id)
            )
            found = {row[0] for row in conn.execute(query)}
            for t in (trial_a, trial_b):
                if t not in found:
                    raise NotFoundError(
                        f"trial {t} is not a trial of factory {self._base._factory_name(conn, factory_id)!r}"
                    )
            values: dict[str, Any] = {
                "factory_id": factory_id,
                "trial_a": trial_a,
                "trial_b": trial_b,
                "winner": winner,
                "source": source,
                "rationale": rationale,
                "created_at": now,
            }
            new_id = inserted_id(conn.execute(preferences.insert(), values))
            shown = {"a": f"trial {trial_a}", "b": f"trial {trial_b}", "tie": "neither"}[winner]
            self._base._event(
                conn,
                now,
                kind=EventKind.PREFERENCE_RECORDED,
                reason=f"{source} prefers {shown} (trials {trial_a} vs {trial_b})"
                + (f": {rationale[:300]}" if rationale else ""),
                factory_id=factory_id,
                data={"preference": new_id, "trial_a": trial_a, "trial_b": trial_b, "winner": winner, "source": source},
            )
        return PreferenceRecord(id=new_id, **values)

    def list_preferences(self, factory_id: int, *, effective: bool = False) -> list[PreferenceRecord]:
        """Every preference of the factory, oldest first; ``effective``: one per pair, a person's over a judge's,
        the newest of the same kind."""
        query = sa.select(preferences).where(preferences.c.factory_id == factory_id).order_by(preferences.c.id)
        with self._base._read("list preferences") as conn:
            rows = [PreferenceRecord(**row._asdict()) for row in conn.execute(query)]
        if not effective:
            return rows
        chosen: dict[tuple[int, int], PreferenceRecord] = {}
        for r in rows:
            key = (min(r.trial_a, r.trial_b), max(r.trial_a, r.trial_b))
            old = chosen.get(key)
            if old is None or r.by_person or not old.by_person:
                chosen[key] = r
        return sorted(chosen.values(), key=lambda r: r.id)

    def rescore_trials(
        self, factory_id: int, scores: dict[int, tuple[float, bool, dict[str, dict[str, float]]]], *, reason: str
    ) -> int:
        """Replace the reward, feasibility and breakdown of evaluated trials (the metrics stay); one event.

        Used when the reward itself changes: stored trials are re-scored from their stored metrics, never
        retrained. Returns how many trials changed.
        """
        now = self._base.clock()
        with self._base._write(f"re-score {len(scores)} trials") as conn:
            for trial_id, (reward, feasible, breakdown) in scores.items():
                conn.execute(
                    evaluations.update()
                    .where(evaluations.c.trial_id == trial_id)
                    .values(reward=float(reward), feasible=bool(feasible), breakdown=normalize(breakdown))
                )
            self._base._event(
                conn,
                now,
                kind=EventKind.REWARD_RESCORED,
                reason=reason,
                factory_id=factory_id,
                data={"trials": len(scores)},
            )
        return len(scores)
