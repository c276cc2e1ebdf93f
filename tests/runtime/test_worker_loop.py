"""The loop of a `darkfab worker`, driven directly with real parts: it claims the trials a coordinator queued in
a SQLite store, runs them on the local executor, records their scores and returns when told. Built as
``Factory.work`` builds it: no budget of its own, its own lease owner."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from darkfab.events import EventKind
from darkfab.runtime._budget import Budget
from darkfab.runtime._campaigns import load_fitted, open_campaign
from darkfab.runtime._parts import started_executor
from darkfab.runtime._worker_loop import WorkerLoop
from darkfab.store import Pauses, Store, TrialRecord

from ..helpers.campaigns import FOREST, LOGISTIC, SOFT, Config, Parts, campaign, spec_for, write_rows

NO_BUDGET = Budget(None, None, None)  # a worker spends the coordinator's budget, it keeps none
SLOW: Config = ("random_forest", {"n_estimators": 300})  # runs past the loop's 0.2 s poll


def _queue(store: Store, campaign_id: int, configs: list[Config]) -> list[int]:
    """Trials a coordinator proposed for any worker: queued, leased to nobody."""
    return [
        store.add_trial(campaign_id, proposer="scripted", trainer=trainer, params=params, reason=f"queued {i}").id
        for i, (trainer, params) in enumerate(configs)
    ]


def _nothing_queued(store: Store, campaign_id: int) -> Callable[[], bool]:
    return lambda: store.count_trials(campaign_id)["queued"] == 0


def _after_calls(n: int) -> tuple[Callable[[], bool], list[int]]:
    """A ``stop_when`` that says stop on its n-th call, and the count of its calls."""
    calls = [0]

    def stop() -> bool:
        calls[0] += 1
        return calls[0] >= n

    return stop, calls


def _work(loop: WorkerLoop, stop_when: Callable[[], bool]) -> int:
    """``loop.work`` in a thread, so a loop that never returns fails the test instead of hanging it."""
    done: list[int] = []
    thread = threading.Thread(target=lambda: done.append(loop.work(stop_when=stop_when)), daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert done, "the worker loop did not return (or raised: see the thread's traceback above)"
    return done[0]


def _by_id(store: Store, ids: list[int]) -> list[TrialRecord]:
    return [store.get_trial(i) for i in ids]


def test_a_worker_runs_only_the_queued_trials_of_its_campaign_and_records_them(tmp_path: Path) -> None:
    rows = write_rows(tmp_path)
    with Store(str(tmp_path / "db.sqlite")) as store:
        other_spec, other_data = load_fitted(spec_for(rows, "other", {"trials": 5}))
        other = open_campaign(store, other_spec, other_data, None).campaign
        theirs = _queue(store, other.id, [LOGISTIC, FOREST])
        with campaign(store, spec_for(rows, "mine", {"trials": 5})) as p:
            mine = _queue(store, p.campaign_id, [LOGISTIC, FOREST, SOFT])
            dropped = _queue(store, p.campaign_id, [LOGISTIC])[0]
            store.finish_trial(dropped, state="cancelled", error="cancelled by the coordinator", reason="budget")
            loop = WorkerLoop(p.context(NO_BUDGET, owner="worker@test/1"))
            done = _work(loop, _nothing_queued(store, p.campaign_id))

        assert done == 3
        for t in _by_id(store, mine):
            assert t.state == "completed" and t.attempt == 1 and t.worker == "worker@test/1"
            assert t.value is not None and t.metrics is not None and t.metrics["log_loss"] == t.value
            assert t.reward is not None
        assert store.get_trial(dropped).state == "cancelled"  # only queued trials are claimed
        assert [t.state for t in _by_id(store, theirs)] == ["queued", "queued"]  # another campaign's: untouched
        assert _events(store, p.campaign_id, EventKind.TRIAL_COMPLETED) == Counter(mine)


def _events(store: Store, campaign_id: int, kind: EventKind) -> Counter[int | None]:
    return Counter(e.trial_id for e in store.list_events(campaign_id=campaign_id, kinds=(kind.value,)))


def test_a_worker_returns_when_stop_when_says_so(tmp_path: Path) -> None:
    rows = write_rows(tmp_path)
    with Store(str(tmp_path / "db.sqlite")) as store, campaign(store, spec_for(rows, "idle", {"trials": 5})) as p:
        stop, calls = _after_calls(3)
        done = _work(WorkerLoop(p.context(NO_BUDGET, owner="worker@test/1")), stop)

        assert (done, calls[0]) == (0, 3)  # nothing to do: it asked on each turn and went on until told
        assert _trials_of(store, p.campaign_id) == []


def test_a_worker_asks_stop_when_only_once_its_trials_in_flight_are_recorded(tmp_path: Path) -> None:
    rows = write_rows(tmp_path)
    with Store(str(tmp_path / "db.sqlite")) as store, campaign(store, spec_for(rows, "busy", {"trials": 5})) as p:
        ids = _queue(store, p.campaign_id, [SLOW, LOGISTIC])
        running_when_asked: list[int] = []

        def stop_at_once() -> bool:
            running_when_asked.append(store.count_trials(p.campaign_id)["running"])
            return True

        done = _work(WorkerLoop(p.context(NO_BUDGET, owner="worker@test/1")), stop_at_once)

        assert running_when_asked == [0]  # asked once, with nothing of its own in flight
        assert done == 1  # told to stop from the start, it still recorded the trial it had claimed
        assert [t.state for t in _by_id(store, ids)] == ["completed", "queued"]


def test_a_paused_factory_gets_no_trial_claimed(tmp_path: Path) -> None:
    rows = write_rows(tmp_path)
    with Store(str(tmp_path / "db.sqlite")) as store, campaign(store, spec_for(rows, "held", {"trials": 5})) as p:
        ids = _queue(store, p.campaign_id, [LOGISTIC, FOREST])
        Pauses(store).pause(p.opened.factory.id, person="ada", reason="look first")
        stop, _ = _after_calls(3)
        done = _work(WorkerLoop(p.context(NO_BUDGET, owner="worker@test/1")), stop)

        assert done == 0
        assert [t.state for t in _by_id(store, ids)] == ["queued", "queued"]


def test_two_workers_over_one_store_never_run_the_same_trial(tmp_path: Path) -> None:
    rows = write_rows(tmp_path)
    url = str(tmp_path / "db.sqlite")
    configs = [LOGISTIC, FOREST, SOFT] * 3
    with Store(url) as store, campaign(store, spec_for(rows, "pair", {"trials": 9})) as p:
        ids = _queue(store, p.campaign_id, configs)
        done: dict[str, int] = {}
        errors: list[BaseException] = []

        def work(owner: str) -> None:
            # a second process in all but name: its own store connection and its own executor
            with Store(url) as own:
                executor = started_executor(p.opened.spec, p.opened.data)
                try:
                    parts = Parts(own, p.opened, executor)
                    loop = WorkerLoop(parts.context(NO_BUDGET, owner=owner))
                    done[owner] = loop.work(stop_when=_nothing_queued(own, p.campaign_id))
                except BaseException as err:  # handed to the test's thread
                    errors.append(err)
                finally:
                    executor.close()

        threads = [threading.Thread(target=work, args=(f"worker@test/{i}",)) for i in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a worker loop did not return"
        assert not errors, errors

        trials = _by_id(store, ids)
        assert all(t.state == "completed" and t.attempt == 1 for t in trials)
        assert {t.worker for t in trials} <= set(done)
        assert sum(done.values()) == len(ids)
        assert Counter(t.worker for t in trials) == Counter({k: v for k, v in done.items() if v})
        assert _events(store, p.campaign_id, EventKind.TRIAL_STARTED) == Counter(ids)  # each started once
        assert _events(store, p.campaign_id, EventKind.RESULT_DROPPED) == Counter()  # no result was thrown away


def _trials_of(store: Store, campaign_id: int) -> list[TrialRecord]:
    return store.list_trials(campaign_id=campaign_id)
