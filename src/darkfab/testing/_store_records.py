"""The store contract's records half: factories, campaigns, trials, leases, workers, JSON and times.

Part of :class:`~darkfab.testing.store_contract.StoreContract`; the helpers here are shared with its chain half.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from darkfab.errors import NotFoundError, StoreError
from darkfab.store import TRIAL_STATES, CampaignRecord, FactoryRecord, Store

_SPEC = {"name": "iris", "data": {"source": "sklearn:iris"}, "budget": {"trials": 20}}


def _factory(store: Store, name: str = "iris") -> FactoryRecord:
    return store.ensure_factory(name, {**_SPEC, "name": name})


def _campaign(store: Store, factory: FactoryRecord | None = None) -> CampaignRecord:
    factory = factory or _factory(store)
    return store.create_campaign(
        factory.id, budget={"trials": 20}, trigger="first", seed=7, data_fingerprint="sha256:abc"
    )


def _add(store: Store, campaign_id: int, **params: Any) -> int:
    return store.add_trial(campaign_id, proposer="random", trainer="rf", params=params or {"n": 1}, reason="explore").id


class RecordsContract:
    """pytest-style tests of the records; the subclass provides the ``store`` fixture."""

    # -- factories --------------------------------------------------------------------------------

    def test_factory_is_created_then_updated(self, store: Store) -> None:
        f = store.ensure_factory("iris", {"a": 1})
        assert f.name == "iris" and f.spec == {"a": 1}
        again = store.ensure_factory("iris", {"a": 1})
        assert again.id == f.id
        changed = store.ensure_factory("iris", {"a": 2})
        assert changed.id == f.id and store.get_factory("iris").spec == {"a": 2}
        kinds = [e.kind for e in store.list_events(factory_id=f.id)]
        assert kinds == ["factory_created", "factory_updated"]
        store.ensure_factory("wine", {})
        assert [x.name for x in store.list_factories()] == ["iris", "wine"]

    def test_unknown_factory_names_the_known_ones(self, store: Store) -> None:
        _factory(store, "iris")
        _factory(store, "wine")
        with pytest.raises(NotFoundError, match=r"'nope'.*iris, wine"):
            store.get_factory("nope")

    # -- campaigns --------------------------------------------------------------------------------

    def test_campaigns_are_numbered_per_factory(self, store: Store) -> None:
        a, b = _factory(store, "a"), _factory(store, "b")
        assert store.latest_campaign(a.id) is None
        c1 = _campaign(store, a)
        store.finish_campaign(c1.id, status="finished", summary={}, reason="done")
        c2 = _campaign(store, a)
        d1 = _campaign(store, b)
        assert (c1.number, c2.number, d1.number) == (1, 2, 1)
        assert c1.status == "running" and c1.budget == {"trials": 20} and c1.seed == 7
        latest = store.latest_campaign(a.id)
        assert latest is not None and latest.id == c2.id
        assert [c.id for c in store.list_campaigns(a.id)] == [c1.id, c2.id]
        assert store.get_campaign(d1.id) == d1
        with pytest.raises(NotFoundError):
            store.get_campaign(10_000)
        started = store.list_events(campaign_id=c1.id, kinds=("campaign_started",))
        assert len(started) == 1 and started[0].data["number"] == 1

    def test_campaign_progress_and_finish(self, store: Store) -> None:
        c = _campaign(store)
        before = len(store.list_events())
        store.update_campaign(c.id, elapsed_s=1.5, cpu_s=3.0)
        store.update_campaign(c.id, elapsed_s=2.5)
        assert len(store.list_events()) == before  # progress is not a decision
        got = store.get_campaign(c.id)
        assert (got.elapsed_s, got.cpu_s) == (2.5, 3.0)
        store.finish_campaign(c.id, status="finished", summary={"best": 0.97, "trials": 3}, reason="budget spent")
        done = store.get_campaign(c.id)
        assert done.status == "finished" and done.summary == {"best": 0.97, "trials": 3}
        assert done.finished_at is not None and done.finished_at >= done.created_at
        event = store.list_events(campaign_id=c.id, kinds=("campaign_finished",))[0]
        assert event.reason == "budget spent" and event.data["status"] == "finished"
        with pytest.raises(StoreError, match="already finished"):
            store.finish_campaign(c.id, status="failed", summary={}, reason="again")
        with pytest.raises(StoreError, match="running campaign"):
            _add(store, c.id)

    def test_campaign_status_must_be_known(self, store: Store) -> None:
        c = _campaign(store)
        with pytest.raises(StoreError, match=r"'done'.*finished"):
            store.finish_campaign(c.id, status="done", summary={}, reason="x")

    # -- trials -----------------------------------------------------------------------------------

    def test_trials_are_numbered_per_campaign_and_carry_their_proposal(self, store: Store) -> None:
        f = _factory(store)
        c1, c2 = _campaign(store, f), _campaign(store, f)
        t1 = store.add_trial(
            c1.id,
            proposer="tpe",
            trainer="lgbm",
            params={"lr": 0.1},
            reason="promising region",
            key="7",
            parents=(3, 4),
            seed=11,
        )
        t2 = store.add_trial(c1.id, proposer="tpe", trainer="lgbm", params={"lr": 0.2}, reason="r")
        u1 = store.add_trial(c2.id, proposer="tpe", trainer="lgbm", params={}, reason="r")
        assert (t1.number, t2.number, u1.number) == (1, 2, 1)
        got = store.get_trial(t1.id)
        assert got == t1
        assert (got.state, got.attempt, got.factory_id, got.campaign_id) == ("queued", 0, f.id, c1.id)
        assert (got.proposer, got.trainer, got.params, got.reason, got.key) == (
            "tpe",
            "lgbm",
            {"lr": 0.1},
            "promising region",
            "7",
        )
        assert got.parents == (3, 4) and got.seed == 11
        assert got.value is None and got.metrics is None
        proposed = store.list_events(kinds=("proposed",))
        assert [e.trial_id for e in proposed] == [t1.id, t2.id, u1.id]
        assert proposed[0].reason == "promising region" and proposed[0].data["params"] == {"lr": 0.1}
        with pytest.raises(NotFoundError):
            store.add_trial(10_000, proposer="p", trainer="t", params={}, reason="r")

    def test_trial_lifecycle_records_everything_in_one_go(self, store: Store) -> None:
        c = _campaign(store)
        tid = _add(store, c.id)
        store.start_trial(tid, worker="w1", lease_owner="pid-1", lease_s=30)
        running = store.get_trial(tid)
        assert (running.state, running.attempt, running.worker, running.lease_owner) == ("running", 1, "w1", "pid-1")
        assert running.started_at is not None and running.lease_expires_at is not None
        assert running.lease_expires_at > running.started_at
        store.finish_trial(
            tid,
            state="completed",
            value=0.93,
            metrics={"accuracy": 0.93, "f1": 0.9},
            reward=0.91,
            feasible=True,
            breakdown={"accuracy": 0.93, "penalty": -0.02},
            log_tail="done\n",
            resources={"cpu_s": 1.25},
            intermediate={10: 0.8, 20: 0.9},
            artifact_path="sha256/ab/abc",
            reason="accuracy 0.93",
        )
        done = store.get_trial(tid)
        assert (done.state, done.value, done.reward, done.feasible) == ("completed", 0.93, 0.91, True)
        assert done.metrics == {"accuracy": 0.93, "f1": 0.9}
        assert done.breakdown == {"accuracy": 0.93, "penalty": -0.02}
        assert done.intermediate == {10: 0.8, 20: 0.9}
        assert (done.log_tail, done.resources, done.artifact_path) == ("done\n", {"cpu_s": 1.25}, "sha256/ab/abc")
        assert done.finished_at is not None and done.lease_expires_at is None
        kinds = [e.kind for e in store.list_events(campaign_id=c.id)]
        assert kinds == ["campaign_started", "proposed", "started", "completed"]
        completed = store.list_events(kinds=("completed",))[0]
        assert completed.trial_id == tid and completed.reason == "accuracy 0.93" and completed.data["value"] == 0.93

    def test_failed_trial_without_metrics_has_no_evaluation(self, store: Store) -> None:
        c = _campaign(store)
        tid = _add(store, c.id)
        store.start_trial(tid, worker="w")
        store.finish_trial(tid, state="failed", error="MemoryError: too big", failure_kind="memory", log_tail="oom")
        t = store.get_trial(tid)
        assert (t.state, t.error, t.failure_kind, t.value, t.metrics) == (
            "failed",
            "MemoryError: too big",
            "memory",
            None,
            None,
        )
        event = store.list_events(kinds=("failed",))[0]
        assert event.data["failure_kind"] == "memory" and event.data["error"] == "MemoryError: too big"

    def test_a_finished_trial_is_never_finished_or_started_twice(self, store: Store) -> None:
        c = _campaign(store)
        tid = _add(store, c.id)
        store.start_trial(tid, worker="w")
        store.finish_trial(tid, state="completed", value=1.0, metrics={"acc": 1.0})
        events_before = len(store.list_events())
        with pytest.raises(StoreError, match="already completed"):
            store.finish_trial(tid, state="completed", value=0.5, metrics={"acc": 0.5})
        with pytest.raises(StoreError, match="already completed"):
            store.finish_trial(tid, state="failed", error="x")
        with pytest.raises(StoreError, match="never run twice"):
            store.start_trial(tid, worker="w2")
        t = store.get_trial(tid)
        assert (t.state, t.value, t.attempt) == ("completed", 1.0, 1)
        assert len(store.list_events()) == events_before

    def test_state_transitions(self, store: Store) -> None:
        c = _campaign(store)
        queued = _add(store, c.id)
        with pytest.raises(StoreError, match="start_trial"):
            store.finish_trial(queued, state="completed", value=1.0)
        with pytest.raises(StoreError, match="start_trial"):
            store.finish_trial(queued, state="pruned")
        with pytest.raises(StoreError, match=r"'done'.*completed"):
            store.finish_trial(queued, state="done")
        store.finish_trial(queued, state="cancelled", reason="budget spent")
        assert store.get_trial(queued).state == "cancelled"
        never_ran = _add(store, c.id)
        store.finish_trial(never_ran, state="failed", error="could not dispatch")
        pruned = _add(store, c.id)
        store.start_trial(pruned, worker="w")
        store.finish_trial(pruned, state="pruned", value=0.4, intermediate={5: 0.4})
        assert store.get_trial(pruned).value == 0.4
        with pytest.raises(NotFoundError):
            store.start_trial(10_000, worker="w")
        with pytest.raises(StoreError, match=r"'lost'.*queued"):
            store.list_trials(states=("lost",))

    def test_retry_and_leases(self, store: Store) -> None:
        c = _campaign(store)
        tid = _add(store, c.id)
        store.start_trial(tid, worker="w1")
        store.start_trial(tid, worker="w2")  # a retry after an infrastructure fault: no lease held
        assert store.get_trial(tid).attempt == 2
        store.start_trial(tid, worker="w3", lease_owner="A", lease_s=60)
        with pytest.raises(StoreError, match="'A' holds its lease"):
            store.start_trial(tid, worker="w4", lease_owner="B", lease_s=60)
        store.start_trial(tid, worker="w3", lease_owner="A", lease_s=60)  # the holder may retry
        t = store.get_trial(tid)
        assert (t.attempt, t.lease_owner) == (4, "A")
        store.start_trial(tid, worker="w5", lease_owner="A", lease_s=-1)  # no lease: anyone may take over
        store.start_trial(tid, worker="w6", lease_owner="B", lease_s=60)
        assert store.get_trial(tid).lease_owner == "B"

    def test_heartbeat_extends_leases_of_running_trials_only(self, store: Store) -> None:
        c = _campaign(store)
        a, b, q = _add(store, c.id), _add(store, c.id), _add(store, c.id)
        store.start_trial(a, worker="w", lease_owner="o", lease_s=1)
        store.start_trial(b, worker="w", lease_owner="o", lease_s=1)
        before = store.get_trial(a)
        events_before = len(store.list_events())
        store.heartbeat([a, b, q], lease_s=600)
        store.heartbeat([], lease_s=600)
        after = store.get_trial(a)
        assert after.lease_expires_at is not None and before.lease_expires_at is not None
        assert after.lease_expires_at - before.lease_expires_at > timedelta(seconds=500)
        assert after.heartbeat_at is not None and before.heartbeat_at is not None
        assert after.heartbeat_at >= before.heartbeat_at
        assert store.get_trial(q).heartbeat_at is None
        assert len(store.list_events()) == events_before

    def test_workers_announce_themselves_and_age_out(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        now = store.clock()
        monkeypatch.setattr(store, "clock", lambda: now)  # the store's clock, moved by hand below
        events_before = len(store.list_events())
        assert store.worker_slots("iris", within_s=60) == 0
        store.announce_worker("iris", owner="worker@a/1", slots=2)
        store.announce_worker("iris", owner="worker@b/2", slots=3)
        store.announce_worker("wine", owner="worker@c/3", slots=4)
        assert store.worker_slots("iris", within_s=60) == 5
        assert store.worker_slots("iris", within_s=60, exclude="worker@a/1") == 3
        store.announce_worker("iris", owner="worker@a/1", slots=1)  # a renewal replaces, never adds
        assert store.worker_slots("iris", within_s=60) == 4
        listed = store.list_workers("iris", within_s=60)
        assert [(w.owner, w.slots) for w in listed] == [("worker@a/1", 1), ("worker@b/2", 3)]
        assert listed[0].seen_at >= listed[0].started_at and listed[0].seen_at.tzinfo is not None
        now += timedelta(seconds=0.3)  # time moves on; nothing sleeps
        store.announce_worker("iris", owner="worker@b/2", slots=3)
        assert store.worker_slots("iris", within_s=0.2) == 3  # a/1 went silent
        store.retire_worker("worker@b/2")
        store.retire_worker("worker@nobody/0")  # retiring twice, or an unknown worker, is harmless
        assert store.worker_slots("iris", within_s=60) == 1 and store.worker_slots("wine", within_s=60) == 4
        with pytest.raises(ValueError, match="at least one slot"):
            store.announce_worker("iris", owner="worker@d/4", slots=0)
        assert len(store.list_events()) == events_before  # presence is data, not a decision

    def test_requeue_interrupted(self, store: Store) -> None:
        c = _campaign(store)
        done, r1, r2, q = (_add(store, c.id) for _ in range(4))
        for tid in (done, r1, r2):
            store.start_trial(tid, worker="w", lease_owner="dead", lease_s=600)
        store.finish_trial(done, state="completed", value=1.0)
        back = store.requeue_interrupted(c.id, reason="the process running this campaign died")
        assert [t.id for t in back] == [r1, r2]
        assert all(t.state == "queued" and t.attempt == 1 and t.lease_owner == "" for t in back)
        assert store.get_trial(done).state == "completed" and store.get_trial(q).state == "queued"
        events = store.list_events(kinds=("requeued",))
        assert [e.trial_id for e in events] == [r1, r2]
        assert events[0].reason == "the process running this campaign died"
        assert store.requeue_interrupted(c.id, reason="again") == []
        store.start_trial(r1, worker="w2", lease_owner="alive", lease_s=60)  # the lease was released
        assert store.get_trial(r1).attempt == 2

    def test_list_and_count_trials(self, store: Store) -> None:
        f1, f2 = _factory(store, "a"), _factory(store, "b")
        c1, c2 = _campaign(store, f1), _campaign(store, f2)
        ids1 = [_add(store, c1.id) for _ in range(3)]
        ids2 = [_add(store, c2.id) for _ in range(2)]
        store.start_trial(ids1[0], worker="w")
        store.finish_trial(ids1[0], state="completed", value=1.0)
        store.finish_trial(ids1[1], state="cancelled")
        assert [t.id for t in store.list_trials()] == ids1 + ids2
        assert [t.id for t in store.list_trials(factory_id=f2.id)] == ids2
        assert [t.id for t in store.list_trials(campaign_id=c1.id, states=("queued", "completed"))] == [
            ids1[0],
            ids1[2],
        ]
        assert store.list_trials(factory_id=f2.id, campaign_id=c1.id) == []
        counts = store.count_trials(c1.id)
        assert set(counts) == set(TRIAL_STATES)
        assert counts == {"queued": 1, "running": 0, "completed": 1, "failed": 0, "pruned": 0, "cancelled": 1}
        assert sum(store.count_trials(10_000).values()) == 0

    def test_a_change_is_one_transaction(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        c = _campaign(store)
        tid = _add(store, c.id)
        store.start_trial(tid, worker="w")
        events_before = len(store.list_events())

        def boom(*args: Any, **kwargs: Any) -> None:
            raise StoreError("the disk vanished while writing the event")

        monkeypatch.setattr(store, "_event", boom)
        with pytest.raises(StoreError, match="disk vanished"):
            store.finish_trial(tid, state="completed", value=0.9, metrics={"acc": 0.9})
        with pytest.raises(StoreError, match="disk vanished"):
            store.add_trial(c.id, proposer="p", trainer="t", params={}, reason="r")
        monkeypatch.undo()
        t = store.get_trial(tid)
        assert (t.state, t.value, t.metrics, t.finished_at) == ("running", None, None, None)
        assert len(store.list_trials(campaign_id=c.id)) == 1
        assert len(store.list_events()) == events_before
        store.finish_trial(tid, state="completed", value=0.9, metrics={"acc": 0.9})
        assert store.get_trial(tid).value == 0.9

    def test_json_round_trip(self, store: Store) -> None:
        spec = {
            "name": "ünïcode ✓",
            "nested": {"list": [1, 2.5, "x", None, True, False, [], {}], "deep": {"a": {"b": {"c": [0.1]}}}},
            "big": 2**53 + 1,
            "tiny": 1e-300,
            "negative": -12.75,
            "empty": "",
        }
        f = store.ensure_factory("json", spec)
        assert f.spec == spec and store.get_factory("json").spec == spec
        c = _campaign(store, f)
        tid = store.add_trial(c.id, proposer="p", trainer="t", params=spec, reason="r").id
        assert store.get_trial(tid).params == spec
        store.start_trial(tid, worker="w")
        store.finish_trial(
            tid,
            state="completed",
            value=float("nan"),
            metrics={"ok": 1.0, "nan": float("nan"), "inf": float("inf"), "tuple": (1, 2)},
            resources={"set": {"b", "a"}},
        )
        t = store.get_trial(tid)
        # NaN and infinity cannot be JSON: they are stored as missing values; tuples and sets become lists
        assert t.value is None
        assert t.metrics == {"ok": 1.0, "nan": None, "inf": None, "tuple": [1, 2]}
        assert t.resources == {"set": ["a", "b"]}
        event = store.append_event(kind="note", reason="r", data={"spec": spec})
        assert store.list_events(kinds=("note",))[0].data == {"spec": spec} == event.data
        with pytest.raises(StoreError, match="cannot be stored as JSON"):
            store.append_event(kind="note", reason="r", data={"x": object()})
        with pytest.raises(StoreError, match="must be a dict"):
            store.ensure_factory("bad", ["not", "a", "dict"])  # type: ignore[arg-type]

    def test_times_are_aware_utc(self, store: Store) -> None:
        now = datetime.now(timezone.utc)
        c = _campaign(store)
        tid = _add(store, c.id)
        store.start_trial(tid, worker="w", lease_s=5)
        t = store.get_trial(tid)
        stamps = [c.created_at, t.created_at, t.started_at, t.heartbeat_at, t.lease_expires_at]
        stamps += [e.created_at for e in store.list_events()]
        for stamp in stamps:
            assert stamp is not None and stamp.tzinfo is not None and stamp.utcoffset() == timedelta(0)
            assert abs(stamp - now) < timedelta(minutes=5)
