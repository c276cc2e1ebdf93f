"""The contract every store backend passes (SQLite and PostgreSQL).

Use it by subclassing in a test module that provides a ``store`` fixture yielding a fresh, empty
:class:`~darkfab.store.Store`::

    from darkfab.testing.store_contract import StoreContract

    class TestMyBackend(StoreContract):
        pass

The tests reach the database only through the public API, except where they play an attacker who edits
the event table with raw SQL (through a separate engine on ``store.url``).
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

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


def _raw_engine(store: Store) -> sa.Engine:
    return sa.create_engine(store.url, poolclass=sa.pool.NullPool)


def _is_memory(store: Store) -> bool:
    url = sa.make_url(store.url)
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _add_trials_in_process(url: str, campaign_id: int, n: int, tag: str, start: Any) -> None:
    """Runs in a child process: its own Store on the same database, released with the others at once."""
    with Store(url) as store:
        start.wait(60)
        for i in range(n):
            store.add_trial(campaign_id, proposer=tag, trainer="rf", params={"i": i}, reason=f"{tag} {i}")


class StoreContract:
    """pytest-style tests; the subclass provides the ``store`` fixture."""

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

    def test_workers_announce_themselves_and_age_out(self, store: Store) -> None:
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
        time.sleep(0.3)
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

    # -- model versions and aliases ---------------------------------------------------------------

    def test_model_versions_and_aliases_move(self, store: Store) -> None:
        f, other = _factory(store, "a"), _factory(store, "b")
        c = _campaign(store, f)
        tid = _add(store, c.id)
        with pytest.raises(NotFoundError, match="no model version is registered yet"):
            store.get_model_version(f.id, "champion")

        def register(n: int, **kw: Any) -> Any:
            return store.add_model_version(
                f.id,
                artifact_hash=f"{n:064x}",
                artifact_path=f"sha256/00/{n:064x}",
                trial_id=kw.get("trial"),
                trainer="rf",
                params={"n": n},
                metrics={"acc": n / 10},
                lineage={"parents": kw.get("parents", [])},
                reason=f"v{n}",
                aliases=kw.get("aliases", ()),
            )

        v1 = register(1, trial=tid, aliases=("champion",))
        v2 = register(2, parents=[1])
        w1 = store.add_model_version(
            other.id,
            artifact_hash="f" * 64,
            artifact_path="p",
            trial_id=None,
            trainer="t",
            params={},
            metrics={},
            lineage={},
            reason="other factory",
        )
        assert (v1.version, v2.version, w1.version) == (1, 2, 1)
        assert v1.aliases == ("champion",) and v1.trial_id == tid and v2.lineage == {"parents": [1]}
        assert store.get_model_version(f.id, "champion").version == 1
        store.set_alias(f.id, "champion", 2, reason="v2 beat v1 on the sealed test")
        store.set_alias(f.id, "challenger", 1, reason="kept for comparison")
        assert store.get_model_version(f.id, "champion").version == 2
        assert store.get_model_version(f.id, "2").aliases == ("champion",)
        assert store.get_model_version(f.id, 1).aliases == ("challenger",)
        assert [(v.version, v.aliases) for v in store.list_model_versions(f.id)] == [
            (1, ("challenger",)),
            (2, ("champion",)),
        ]
        moves = store.list_events(factory_id=f.id, kinds=("alias_set",))
        assert [(e.data["alias"], e.data["version"], e.data["previous"]) for e in moves] == [
            ("champion", 1, None),
            ("champion", 2, 1),
            ("challenger", 1, None),
        ]
        assert moves[1].reason == "v2 beat v1 on the sealed test"
        assert [e.data["version"] for e in store.list_events(factory_id=f.id, kinds=("registered",))] == [1, 2]
        with pytest.raises(NotFoundError, match=r"'staging'.*versions: 1, 2.*champion -> 2"):
            store.get_model_version(f.id, "staging")
        with pytest.raises(NotFoundError, match="version 9"):
            store.get_model_version(f.id, 9)
        with pytest.raises(NotFoundError, match="version 9"):
            store.set_alias(f.id, "champion", 9, reason="x")
        with pytest.raises(StoreError, match="numbers name versions"):
            store.set_alias(f.id, "3", 1, reason="x")
        with pytest.raises(NotFoundError, match="no such trial"):
            register(3, trial=10_000)
        assert store.get_model_version(other.id, "1") == w1

    # -- the event chain --------------------------------------------------------------------------

    def test_events_filter_and_limit(self, store: Store) -> None:
        f = _factory(store)
        c = _campaign(store, f)
        for i in range(5):
            store.append_event(kind="note", reason=f"n{i}", factory_id=f.id, campaign_id=c.id, data={"i": i})
        store.append_event(kind="other", reason="global")
        assert [e.reason for e in store.list_events(kinds=("note",), limit=2)] == ["n3", "n4"]
        assert [e.kind for e in store.list_events(factory_id=f.id)][-5:] == ["note"] * 5
        assert [e.reason for e in store.list_events(limit=1)] == ["global"]
        ids = [e.id for e in store.list_events()]
        assert ids == sorted(ids)
        with pytest.raises(StoreError, match="event kind"):
            store.append_event(kind="", reason="r")

    def test_an_llm_call_is_reserved_then_settled(self, store: Store) -> None:
        c = _campaign(store)
        fid = c.factory_id
        messages = [{"role": "user", "content": "propose"}]
        held = store.add_llm_call(
            factory_id=fid,
            campaign_id=c.id,
            call_id="a1",
            proposer="llm",
            model="m",
            request=messages,
            response="",
            status="reserved",
            prompt_tokens=100,
            completion_tokens=500,
            cost=0.6,
        )
        store.add_llm_call(
            factory_id=fid,
            campaign_id=c.id,
            call_id="a1.0",
            proposer="llm",
            model="m",
            request=messages,
            response="",
            status="429",
            error="rate limited",
        )
        assert store.llm_usage(c.id) == (600, pytest.approx(0.6))  # killed now: the request counts at its most
        settled = store.add_llm_call(
            factory_id=fid,
            campaign_id=c.id,
            call_id="a1",
            proposer="llm",
            model="m",
            request=messages,
            response="{}",
            status="ok",
            prompt_tokens=90,
            completion_tokens=20,
            cost=0.11,
            proposal_keys=["k"],
        )
        assert settled.id > held.id
        rows = store.list_llm_calls(campaign_id=c.id)
        assert [(r.call_id, r.status) for r in rows] == [("a1.0", "429"), ("a1", "ok")]
        assert store.llm_usage(c.id) == (110, pytest.approx(0.11))
        assert [r.call_id for r in store.list_llm_calls(campaign_id=c.id, status="reserved")] == []
        with pytest.raises(StoreError, match="LLM call status"):
            store.add_llm_call(
                factory_id=fid,
                campaign_id=c.id,
                call_id="b",
                proposer="llm",
                model="m",
                request=messages,
                response="",
                status="pending",
            )

    def test_chain_verifies(self, store: Store) -> None:
        report = store.verify_chain()
        assert report.ok and report.checked == 0
        c = _campaign(store)
        for _ in range(3):
            _add(store, c.id)
        events = store.list_events()
        assert events[0].prev_hash == "0" * 64
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
        report = store.verify_chain()
        assert report.ok and report.checked == len(events) and report.first_bad_id is None
        assert events[-1].hash in report.message

    def test_chain_detects_an_edited_event(self, store: Store) -> None:
        c = _campaign(store)
        for _ in range(4):
            _add(store, c.id)
        target = store.list_events()[2]
        engine = _raw_engine(store)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE events SET reason = 'nothing to see' WHERE id = :id"), {"id": target.id})
        finally:
            engine.dispose()
        report = store.verify_chain()
        assert not report.ok and report.first_bad_id == target.id
        assert f"event {target.id}" in report.message and "altered" in report.message

    def test_chain_detects_a_removed_event(self, store: Store) -> None:
        c = _campaign(store)
        for _ in range(4):
            _add(store, c.id)
        events = store.list_events()
        middle, after = events[2], events[3]
        engine = _raw_engine(store)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("DELETE FROM events WHERE id = :id"), {"id": middle.id})
        finally:
            engine.dispose()
        report = store.verify_chain()
        assert not report.ok and report.first_bad_id == after.id
        assert "removed" in report.message

    def test_concurrent_threads_keep_one_chain(self, store: Store) -> None:
        if _is_memory(store):
            pytest.skip("an in-memory database lives in one connection")
        c = _campaign(store)
        n, errors = 15, []
        stores = [store, Store(store.url), Store(store.url)]
        barrier = threading.Barrier(len(stores))

        def work(s: Store, tag: str) -> None:
            try:
                barrier.wait()
                for i in range(n):
                    tid = s.add_trial(c.id, proposer=tag, trainer="t", params={"i": i}, reason=tag).id
                    s.append_event(kind="note", reason=tag, trial_id=tid)
            except Exception as err:  # pragma: no cover - reported below
                errors.append(err)

        threads = [threading.Thread(target=work, args=(s, f"t{i}")) for i, s in enumerate(stores)]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        finally:
            for s in stores[1:]:
                s.close()
        assert not errors, errors
        numbers = sorted(t.number for t in store.list_trials(campaign_id=c.id))
        assert numbers == list(range(1, n * len(stores) + 1))
        report = store.verify_chain()
        assert report.ok, report.message
        assert report.checked == len(store.list_events()) == 2 + 2 * n * len(stores)

    def test_concurrent_processes_keep_one_chain(self, store: Store) -> None:
        if _is_memory(store):
            pytest.skip("an in-memory database lives in one process")
        c = _campaign(store)
        n = 20
        ctx = multiprocessing.get_context("spawn")
        start = ctx.Barrier(3)
        procs = [
            ctx.Process(target=_add_trials_in_process, args=(store.url, c.id, n, f"p{i}", start)) for i in range(2)
        ]
        for p in procs:
            p.start()
        start.wait(60)
        for i in range(n):  # and this process too, at the same time
            _add(store, c.id, i=i)
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0, 0]
        numbers = sorted(t.number for t in store.list_trials(campaign_id=c.id))
        assert numbers == list(range(1, 3 * n + 1))
        report = store.verify_chain()
        assert report.ok, report.message
        assert report.checked == 2 + 3 * n
