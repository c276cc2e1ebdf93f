"""Why a campaign stopped is typed (RunResult.stop_reason, a darkfab.events.StopReason value) beside the
sentence a person reads, so nothing downstream decides by parsing the sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from darkfab.events import StopReason
from darkfab.runtime import Factory
from darkfab.spec import spec_from_dict
from darkfab.store import Pauses, Store


def _spec(name: str, budget: dict[str, object]) -> dict[str, object]:
    return {
        "name": name,
        "data": {"source": "sklearn:iris", "target": "target"},
        "trainers": [{"name": "logistic_regression"}],
        "budget": budget,
        "execution": {"workers": 1, "trial_timeout": "60s", "latency_rows": 3},
        "gate": {"bootstrap": 100},
    }


@pytest.mark.parametrize(
    ("budget", "reason", "says"),
    [
        ({"trials": 2}, StopReason.TRIAL_BUDGET, "trial budget of 2 reached"),
        ({"time": "3s"}, StopReason.TIME_BUDGET, "wall-time budget of 3s reached"),
    ],
    ids=["trials", "time"],
)
def test_the_stop_reason_is_typed_and_said(
    tmp_path: Path, budget: dict[str, object], reason: StopReason, says: str
) -> None:
    with Store(str(tmp_path / "darkfab.db")) as store:
        result = Factory(spec_from_dict(_spec("stops", budget), "test"), store=store).run()
        assert result.stop_reason == reason.value
        assert result.stopped_because == says
        assert StopReason(result.stop_reason).is_spend_limit is (reason is StopReason.TIME_BUDGET)
        assert result.to_json()["stop_reason"] == reason.value
        stored = store.get_campaign(result.campaign).summary
        assert stored["stop_reason"] == reason.value


def test_a_pause_stops_the_campaign_as_paused_without_a_gate(tmp_path: Path) -> None:
    with Store(str(tmp_path / "darkfab.db")) as store:
        factory = Factory(spec_from_dict(_spec("paused", {"trials": 50}), "test"), store=store)
        seen: list[str] = []

        def pause_after_first_trial(progress: object) -> None:
            if getattr(progress, "kind", "") == "trial_finished" and not seen:
                seen.append("paused")
                Pauses(store).pause(store.get_factory("paused").id, person="ada", reason="look first")

        result = factory.run(on_progress=pause_after_first_trial)
        assert result.stop_reason == StopReason.PAUSED.value == result.stopped_because
        assert result.gate is None and result.champion is None
        assert store.get_campaign(result.campaign).status == "running"  # left open to resume
        assert sum(result.trials.get(s, 0) for s in ("completed", "failed", "pruned")) < 50
