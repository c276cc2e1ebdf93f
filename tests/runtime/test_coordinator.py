"""The coordinator of one campaign, driven directly with real parts: a SQLite store in tmp_path, the local
executor, a tiny generated data set and a scripted proposer (fixed configs, then nothing), so each run is the
same. ``Factory.run`` builds it the same way (open_campaign, budget_of, started_executor)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from darkfab.events import EventKind, StopReason
from darkfab.results import Progress
from darkfab.runtime._budget import Budget, Stop
from darkfab.runtime._campaigns import budget_of
from darkfab.runtime._coordinator import Coordinator
from darkfab.runtime._parts import default_owner
from darkfab.spec import TrainerSpec
from darkfab.store import Pauses, Store, TrialRecord

from ..helpers.campaigns import BROKEN, FOREST, LOGISTIC, SOFT, Parts, Scripted, campaign, spec_for, write_rows


def _trials(store: Store, campaign_id: int) -> list[TrialRecord]:
    return store.list_trials(campaign_id=campaign_id)


def _events(store: Store, campaign_id: int, kind: EventKind) -> Counter[int | None]:
    """How many events of ``kind`` each trial of the campaign has."""
    return Counter(e.trial_id for e in store.list_events(campaign_id=campaign_id, kinds=(kind.value,)))


def _run(
    parts: Parts,
    proposer: Scripted,
    budget: Budget | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> tuple[Coordinator, Stop]:
    coordinator = Coordinator(parts.context(budget, on_progress=on_progress), proposer)
    return coordinator, coordinator.run()


# -- why it stops ------------------------------------------------------------------------------------------------
def test_stops_at_the_trial_budget_with_each_trial_recorded_once_with_its_score(tmp_path: Path) -> None:
    rows = write_rows(tmp_path)
    with Store(str(tmp_path / "db.sqlite")) as store, campaign(store, spec_for(rows, "budget", {"trials": 3})) as p:
        proposer = Scripted([LOGISTIC, FOREST, SOFT, FOREST, LOGISTIC])
        _, stop = _run(p, proposer)

        assert stop == Stop(StopReason.TRIAL_BUDGET, "trial budget of 3 reached")
        assert proposer.proposed == 3  # never asked for more than the budget
        trials = _trials(store, p.campaign_id)
        assert [(t.key, t.trainer, t.params) for t in trials] == [
            ("k0", *LOGISTIC),
            ("k1", FOREST[0], {**FOREST[1]}),
            ("k2", *SOFT),
        ]
        for t in trials:
            assert t.state == "completed" and t.attempt == 1 and t.error is None
            assert t.value is not None and math.isfinite(t.value)
            assert t.metrics is not None and t.metrics["log_loss"] == t.value  # the score computed here
            assert t.reward is not None and t.feasible is True
        ids = [t.id for t in trials]
        assert _events(store, p.campaign_id, EventKind.TRIAL_STARTED) == Counter(ids)
        assert _events(store, p.campaign_id, EventKind.TRIAL_COMPLETED) == Counter(ids)
        # the proposer learns each outcome once, with the score the store holds
        assert [(k, v.state, v.value) for k, v in proposer.observed] == [(t.key, "completed", t.value) for t in trials]


def test_stops_when_the_proposer_has_nothing_more(tmp_path: Path) -> None:
    rows = write_rows(tmp_path)
    with Store(str(tmp_path / "db.sqlite")) as store, campaign(store, spec_for(rows, "dry", {"trials": 10})) as p:
        _, stop = _run(p, Scripted([LOGISTIC, FOREST]))

        assert stop == Stop(StopReason.NOTHING_TO_PROPOSE, "the proposer had nothing more to propose")
        assert [t.state for t in _trials(store, p.campaign_id)] == ["completed", "completed"]


def test_stops_on_the_time_budget_and_leaves_no_trial_in_flight(tmp_path: Path) -> None:
    rows = write_rows(tmp_path)
    with (
        Store(str(tmp_path / "db.sqlite")) as store,
        campaign(store, spec_for(rows, "clock", {"time": "2s", "trials": 500})) as p,
    ):
        proposer = Scripted([LOGISTIC, FOREST], cycle=True)  # never runs dry: the clock stops it (500: a bound)
        coordinator, stop = _run(p, proposer)

        assert stop == Stop(StopReason.TIME_BUDGET, "wall-time budget of 2s reached")
        states = Counter(t.state for t in _trials(store, p.campaign_id))
        assert states["completed"] >= 1
        assert set(states) <= {"completed", "cancelled"}  # stopped trials are cancelled, never left running
        assert store.get_campaign(p.campaign_id).elapsed_s == coordinator.budget.spent_time_s  # saved to resume


def test_a_pause_before_the_first_trial_stops_at_once(tmp_path: Path) -> None:
    rows = write_rows(tmp_path)
    with Store(str(tmp_path / "db.sqlite")) as store, campaign(store, spec_for(rows, "held", {"trials": 5})) as p:
        Pauses(store).pause(p.opened.factory.id, person="ada", reason="look first")
        proposer = Scripted([LOGISTIC, FOREST])
        _, stop = _run(p, proposer)

        assert stop == Stop(StopReason.PAUSED, StopReason.PAUSED.value)
        assert proposer.proposed == 0 and _trials(store, p.campaign_id) == []


def test_a_pause_during_the_run_stops_after_the_trials_in_flight_are_recorded(tmp_path: Path) -> None:
    rows = write_rows(tmp_path)
    with Store(str(tmp_path / "db.sqlite")) as store, campaign(store, spec_for(rows, "midway", {"trials": 500})) as p:

        def pause_after_the_first_trial(progress: Progress) -> None:
            if progress.kind == "trial_finished" and Pauses(store).state(p.opened.factory.id) is None:
                Pauses(store).pause(p.opened.factory.id, person="ada", reason="look first")

        proposer = Scripted([LOGISTIC, FOREST], cycle=True)
        _, stop = _run(p, proposer, on_progress=pause_after_the_first_trial)

        assert stop.reason is StopReason.PAUSED
        trials = _trials(store, p.campaign_id)
        assert 1 <= len(trials) < 500  # the loop reads the pause at most a PAUSE_POLL_S late, not 500 trials late
        assert not [t for t in trials if t.state == "running"]  # those in flight were waited for and recorded
        assert store.get_campaign(p.campaign_id).status == "running"  # left open to resume


# -- failures ----------------------------------------------------------------------------------------------------
def test_a_trial_that_raises_is_recorded_as_failed_and_the_loop_goes_on(tmp_path: Path) -> None:
    rows = write_rows(tmp_path)
    with Store(str(tmp_path / "db.sqlite")) as store, campaign(store, spec_for(rows, "boom", {"trials": 3})) as p:
        proposer = Scripted([LOGISTIC, BROKEN, FOREST])
        _, stop = _run(p, proposer)

        assert stop.reason is StopReason.TRIAL_BUDGET
        first, broken, last = _trials(store, p.campaign_id)
        assert (first.state, last.state) == ("completed", "completed")  # the trial after the failure ran
        assert broken.state == "failed" and broken.failure_kind == "exception" and broken.value is None
        assert broken.error is not None and "InvalidParameterError" in broken.error and "'C'" in broken.error
        assert _events(store, p.campaign_id, EventKind.TRIAL_FAILED) == Counter([broken.id])
        assert [(k, v.state) for k, v in proposer.observed] == [
            ("k0", "completed"),
            ("k1", "failed"),
            ("k2", "completed"),
        ]
        assert proposer.observed[1][1].error == broken.error


# -- resuming ----------------------------------------------------------------------------------------------------
def test_a_resumed_campaign_runs_no_completed_trial_again_and_counts_what_was_spent(tmp_path: Path) -> None:
    rows = write_rows(tmp_path)
    spec = spec_for(rows, "again", {"trials": 4})
    with Store(str(tmp_path / "db.sqlite")) as store:
        with campaign(store, spec) as first:
            one, stop = _run(first, Scripted([LOGISTIC, FOREST]))
            assert stop.reason is StopReason.NOTHING_TO_PROPOSE  # the campaign stays open: nothing closed it
            done = _trials(store, first.campaign_id)
            # a trial this host's coordinator was running when its process died
            store.add_trial(
                first.campaign_id,
                proposer="scripted",
                trainer=SOFT[0],
                params=SOFT[1],
                reason="interrupted",
                start_as=default_owner("run", "again"),
                lease_s=30,
            )
        with campaign(store, spec) as second:
            assert second.opened.resumed and second.campaign_id == first.campaign_id
            budget = budget_of(store.get_campaign(second.campaign_id))
            assert budget.spent_time_s == one.budget.spent_time_s > 0
            proposer = Scripted([FOREST, LOGISTIC, FOREST, LOGISTIC])
            two, stop = _run(second, proposer, budget)

        assert stop == Stop(StopReason.TRIAL_BUDGET, "trial budget of 4 reached")
        assert proposer.proposed == 1  # 2 completed before + the interrupted one requeued = 3 of 4 spent
        after = _trials(store, first.campaign_id)
        assert len(after) == 4 and all(t.state == "completed" for t in after)
        assert after[:2] == done  # untouched: same attempt, score and finish time
        assert after[2].reason == "interrupted" and after[2].attempt == 2  # requeued, then run by the second
        assert _events(store, first.campaign_id, EventKind.TRIAL_COMPLETED) == Counter(t.id for t in after)
        assert two.budget.spent_time_s > one.budget.spent_time_s  # the clock went on from what was spent


def test_a_resumed_campaign_whose_time_is_spent_stops_without_proposing(tmp_path: Path) -> None:
    rows = write_rows(tmp_path)
    spec = spec_for(rows, "late", {"time": "2s"})
    with Store(str(tmp_path / "db.sqlite")) as store:
        with campaign(store, spec) as first:
            _, stop = _run(first, Scripted([LOGISTIC], cycle=True))
            assert stop.reason is StopReason.TIME_BUDGET
            before = _trials(store, first.campaign_id)
        with campaign(store, spec) as second:
            assert second.opened.resumed
            proposer = Scripted([LOGISTIC], cycle=True)
            _, stop = _run(second, proposer)

        assert stop == Stop(StopReason.TIME_BUDGET, "wall-time budget of 2s reached")
        assert proposer.proposed == 0 and _trials(store, first.campaign_id) == before


# -- the ensemble ------------------------------------------------------------------------------------------------
def test_the_ensemble_is_recorded_as_a_trial_over_the_completed_ones(tmp_path: Path) -> None:
    rows = write_rows(tmp_path)  # a line and a curve: the linear model and the forest err differently
    with Store(str(tmp_path / "db.sqlite")) as store, campaign(store, spec_for(rows, "blend", {"trials": 3})) as p:
        coordinator, _ = _run(p, Scripted([LOGISTIC, BROKEN, FOREST]))
        singles = _trials(store, p.campaign_id)
        ensemble = coordinator.build_ensemble()

        assert ensemble is not None
        completed = [t.id for t in singles if t.state == "completed"]
        assert ensemble.params["members"] == completed == list(ensemble.parents)  # the failed one is no member
        assert math.isclose(sum(ensemble.params["weights"]), 1.0)
        for member in ensemble.params["members"]:
            assert store.get_trial(member).campaign_id == p.campaign_id
        stored = store.get_trial(ensemble.id)
        assert (stored.trainer, stored.proposer, stored.state) == ("ensemble", "ensemble", "completed")
        assert stored.value is not None and stored.metrics is not None and stored.metrics["log_loss"] == stored.value
        assert stored.artifact_path and coordinator.artifacts.exists(stored.artifact_path)
        assert stored.value <= min(t.value for t in singles if t.value is not None)  # never below its best member
        assert [t.id for t in _trials(store, p.campaign_id)] == [*(t.id for t in singles), ensemble.id]


def test_no_ensemble_from_fewer_than_two_usable_trials(tmp_path: Path) -> None:
    rows = write_rows(tmp_path)
    with Store(str(tmp_path / "db.sqlite")) as store, campaign(store, spec_for(rows, "alone", {"trials": 2})) as p:
        coordinator, _ = _run(p, Scripted([LOGISTIC, BROKEN]))
        before = _trials(store, p.campaign_id)

        assert coordinator.build_ensemble() is None
        assert _trials(store, p.campaign_id) == before  # nothing recorded


CURVE = """\
import numpy as np
from sklearn.linear_model import LogisticRegression


class Curve:
    def __init__(self, model):
        self.model = model

    def predict_proba(self, X):
        return self.model.predict_proba(np.asarray(X)[:, [1]] ** 2)


def train(X, y, X_valid, params, report):
    return Curve(LogisticRegression().fit(np.asarray(X)[:, [1]] ** 2, y))
"""


def test_a_model_made_by_a_training_script_is_no_ensemble_member(tmp_path: Path) -> None:
    # loading a script's model runs its code, which only the sandboxed workers may do: the coordinator, which
    # builds the ensemble in its own process, leaves such candidates out (it used to raise UntrustedCodeError)
    rows = write_rows(tmp_path)
    (tmp_path / "curve.py").write_text(CURVE)
    spec = spec_for(rows, "scripted", {"trials": 3})
    spec = spec.model_copy(
        update={"trainers": [*spec.trainers, TrainerSpec(name="curve", script=str(tmp_path / "curve.py"))]}
    )
    with Store(str(tmp_path / "db.sqlite")) as store, campaign(store, spec) as p:
        coordinator, _ = _run(p, Scripted([LOGISTIC, ("curve", {}), FOREST]))
        logistic, curve, forest = _trials(store, p.campaign_id)
        assert curve.state == "completed"  # a good candidate, which the linear model and the forest miss

        ensemble = coordinator.build_ensemble()

        assert ensemble is not None and ensemble.params["members"] == [logistic.id, forest.id]
