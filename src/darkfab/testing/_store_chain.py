"""The store contract's chain half: model versions and aliases, events, LLM calls, the audit chain, concurrency.

Part of :class:`~darkfab.testing.store_contract.StoreContract`.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
from typing import Any

import pytest
import sqlalchemy as sa

from darkfab.errors import NotFoundError, StoreError
from darkfab.store import LLMCallRecord, Store

from ._store_records import _add, _campaign, _factory


def _tamper(store: Store, sql: str, **params: Any) -> None:
    """Run ``sql`` on the store's database behind its back, as an attacker with write access would."""
    engine = sa.create_engine(store.url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()


def _is_memory(store: Store) -> bool:
    url = sa.make_url(store.url)
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _add_trials_in_process(url: str, campaign_id: int, n: int, tag: str, start: Any) -> None:
    """Runs in a child process: its own Store on the same database, released with the others at once."""
    with Store(url) as store:
        start.wait(60)
        for i in range(n):
            store.add_trial(campaign_id, proposer=tag, trainer="rf", params={"i": i}, reason=f"{tag} {i}")


class ChainContract:
    """pytest-style tests of versions, events and the chain; the subclass provides the ``store`` fixture."""

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

        def call(call_id: str, status: str, **outcome: Any) -> LLMCallRecord:
            request = [{"role": "user", "content": "propose"}]
            outcome.setdefault("response", "")
            return store.add_llm_call(
                factory_id=c.factory_id,
                campaign_id=c.id,
                call_id=call_id,
                proposer="llm",
                model="m",
                request=request,
                status=status,
                **outcome,
            )

        held = call("a1", "reserved", prompt_tokens=100, completion_tokens=500, cost=0.6)
        call("a1.0", "429", error="rate limited")
        assert store.llm_usage(c.id) == (600, pytest.approx(0.6))  # killed now: the request counts at its most
        settled = call(
            "a1", "ok", response="{}", prompt_tokens=90, completion_tokens=20, cost=0.11, proposal_keys=["k"]
        )
        assert settled.id > held.id
        rows = store.list_llm_calls(campaign_id=c.id)
        assert [(r.call_id, r.status) for r in rows] == [("a1.0", "429"), ("a1", "ok")]
        assert store.llm_usage(c.id) == (110, pytest.approx(0.11))
        assert [r.call_id for r in store.list_llm_calls(campaign_id=c.id, status="reserved")] == []
        with pytest.raises(StoreError, match="LLM call status"):
            call("b", "pending")

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
        _tamper(store, "UPDATE events SET reason = 'nothing to see' WHERE id = :id", id=target.id)
        report = store.verify_chain()
        assert not report.ok and report.first_bad_id == target.id
        assert f"event {target.id}" in report.message and "altered" in report.message

    def test_chain_detects_a_removed_event(self, store: Store) -> None:
        c = _campaign(store)
        for _ in range(4):
            _add(store, c.id)
        events = store.list_events()
        middle, after = events[2], events[3]
        _tamper(store, "DELETE FROM events WHERE id = :id", id=middle.id)
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
