"""The store's injectable clock (time is moved, never slept), and the statements each trial call costs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from darkfab.store import Store

_T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


class MovableClock:
    """A clock a test moves by hand: ``Store(url, clock=clock)``, then ``clock.move(seconds=...)``."""

    def __init__(self, start: datetime = _T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def move(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def _campaign_id(store: Store) -> int:
    f = store.ensure_factory("clocked", {})
    return store.create_campaign(f.id, budget={}, trigger="t", seed=0, data_fingerprint="").id


def test_every_stamp_comes_from_the_clock(tmp_path: Path) -> None:
    clock = MovableClock()
    with Store(str(tmp_path / "c.db"), clock=clock) as store:
        cid = _campaign_id(store)
        tid = store.add_trial(cid, proposer="p", trainer="t", params={}, reason="r").id
        clock.move(seconds=5)
        store.start_trial(tid, worker="w", lease_owner="w", lease_s=60)
        clock.move(seconds=7)
        store.finish_trial(tid, state="completed", value=1.0, lease_owner="w")
        t = store.get_trial(tid)
        assert (t.created_at, t.started_at, t.heartbeat_at) == (
            _T0,
            _T0 + timedelta(seconds=5),
            _T0 + timedelta(seconds=5),
        )
        assert t.finished_at == _T0 + timedelta(seconds=12)
        assert [e.created_at for e in store.list_events(kinds=("proposed", "started", "completed"))] == [
            _T0,
            _T0 + timedelta(seconds=5),
            _T0 + timedelta(seconds=12),
        ]
        assert store.get_campaign(cid).created_at == _T0
        assert store.audit_head()["exported_at"] == (_T0 + timedelta(seconds=12)).isoformat()
    head = json.loads((tmp_path / "audit.head").read_text())  # the anchor beside the database
    assert head["updated_at"] == (_T0 + timedelta(seconds=12)).isoformat()


def test_a_moved_clock_ages_workers_and_expires_leases(tmp_path: Path) -> None:
    clock = MovableClock()
    with Store(str(tmp_path / "c.db"), clock=clock) as store:
        cid = _campaign_id(store)
        store.announce_worker("clocked", owner="worker@a/1", slots=2)
        clock.move(seconds=30)
        store.announce_worker("clocked", owner="worker@b/2", slots=3)
        assert store.worker_slots("clocked", within_s=60) == 5
        assert store.worker_slots("clocked", within_s=20) == 3  # a/1 has been silent for 30 s
        assert [w.owner for w in store.list_workers("clocked", within_s=20)] == ["worker@b/2"]

        tid = store.add_trial(cid, proposer="p", trainer="t", params={}, reason="r", start_as="w1", lease_s=60).id
        clock.move(seconds=59)
        assert store.reclaim_expired(cid, reason="silent") == []
        store.heartbeat([tid], lease_s=60)  # extends the lease to 60 s from this moment
        clock.move(seconds=59)
        assert store.reclaim_expired(cid, reason="silent") == []
        clock.move(seconds=2)
        assert store.reclaim_expired(cid, reason="silent") == [tid]
        assert store.get_trial(tid).state == "queued"


def test_statements_and_rows_per_trial_call(tmp_path: Path) -> None:
    """What each trial call costs on SQLite, as statements on the tables (the old timing print, made to fail):
    a change reads its starting row with the chain head in one SELECT, writes, appends its event and counts the
    events after the anchored head; one more statement is a round trip more on every trial."""
    n = 20
    with Store(str(tmp_path / "cost.db")) as store:
        cid = _campaign_id(store)
        seen: list[str] = []

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if statement.lstrip().split(None, 1)[0].upper() in ("SELECT", "INSERT", "UPDATE", "DELETE"):
                seen.append(statement)

        sa.event.listen(store._engine, "before_cursor_execute", count)
        ids = [store.add_trial(cid, proposer="p", trainer="t", params={"i": i}, reason="r").id for i in range(n)]
        added, seen[:] = len(seen), []
        for tid in ids:
            store.start_trial(tid, worker="w")
        started, seen[:] = len(seen), []
        for tid in ids:
            store.finish_trial(tid, state="completed", value=0.5, metrics={"acc": 0.5}, reward=0.5, feasible=True)
        finished = len(seen)
        sa.event.remove(store._engine, "before_cursor_execute", count)
        assert (added, started, finished) == (5 * n, 4 * n, 5 * n)
        with store._engine.connect() as conn:
            rows = {
                table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("proposals", "trials", "evaluations", "events")
            }
        assert rows == {"proposals": n, "trials": n, "evaluations": n, "events": 2 + 3 * n}
