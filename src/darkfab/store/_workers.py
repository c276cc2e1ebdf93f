"""The worker roster: `darkfab worker` processes announce themselves, so the coordinator keeps them fed.

A worker writes one row (its owner string, the factory it serves, how many trials it runs at once) and
refreshes ``seen_at`` at its heartbeat cadence; the coordinator sums the slots of the workers seen within a
lease and keeps that many proposals queued for them. A worker that exits removes its row; one that is
killed simply stops being seen. Presence is data, not a decision, so no audit event is appended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from ._base import Repository
from ._schema import workers


@dataclass(frozen=True)
class WorkerRecord:
    owner: str
    factory: str
    slots: int
    started_at: datetime
    seen_at: datetime


class Workers(Repository):
    """The ``workers`` table: who serves which factory with how many slots, as of when."""

    def announce_worker(self, factory: str, *, owner: str, slots: int) -> None:
        """Say that ``owner`` serves ``factory`` with ``slots`` trials at once, as of now."""
        if slots < 1:
            raise ValueError(f"a worker has at least one slot, got {slots}")
        now = self._base.clock()
        with self._base._write(f"announce worker {owner}", chain=False) as conn:
            seen = conn.execute(
                workers.update().where(workers.c.owner == owner).values(factory=factory, slots=slots, seen_at=now)
            )
            if seen.rowcount == 0:
                conn.execute(
                    workers.insert().values(owner=owner, factory=factory, slots=slots, started_at=now, seen_at=now)
                )

    def retire_worker(self, owner: str) -> None:
        """``owner`` stopped: take it off the roster."""
        with self._base._write(f"retire worker {owner}", chain=False) as conn:
            conn.execute(workers.delete().where(workers.c.owner == owner))

    def list_workers(self, factory: str, *, within_s: float) -> list[WorkerRecord]:
        """The workers of ``factory`` seen in the last ``within_s`` seconds, oldest first."""
        query = (
            sa.select(workers)
            .where(workers.c.factory == factory, workers.c.seen_at >= self._base.clock() - timedelta(seconds=within_s))
            .order_by(workers.c.started_at, workers.c.owner)
        )
        with self._base._read(f"list the workers of {factory}") as conn:
            return [WorkerRecord(**row._asdict()) for row in conn.execute(query)]

    def worker_slots(self, factory: str, *, within_s: float, exclude: str | None = None) -> int:
        """Trial slots of the workers of ``factory`` seen in the last ``within_s`` seconds (but ``exclude``)."""
        query = sa.select(sa.func.coalesce(sa.func.sum(workers.c.slots), 0)).where(
            workers.c.factory == factory, workers.c.seen_at >= self._base.clock() - timedelta(seconds=within_s)
        )
        if exclude is not None:
            query = query.where(workers.c.owner != exclude)
        with self._base._read(f"count the workers of {factory}") as conn:
            return int(conn.execute(query).scalar_one())
