"""RunResult's gate, beat and budget are typed records (darkfab.results); ``to_dict()`` gives the JSON the
command line, the store, the events and the lineage carried before, key for key and in the same order."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from darkfab.events import EventKind
from darkfab.results import (
    BeatenModel,
    BudgetLimits,
    BudgetSpent,
    GateOutcome,
    MemorizationProbe,
    RefitRecord,
    RunBudget,
    SealedScore,
    SealedSetRef,
)
from darkfab.runtime import Factory
from darkfab.spec import spec_from_dict
from darkfab.store import Store

DECIDED_KEYS = [
    "passed",
    "reason",
    "trial",
    "delta",
    "p_better",
    "beat",
    "candidate",
    "champion",
    "memorization",
    "flagged",
    "weak_evidence",
    "sealed_uses",
    "sealed_budget",
    "sealed_set",
]


def _spec(name: str, **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "data": {"source": "sklearn:breast_cancer"},
        "trainers": [{"name": "logistic_regression"}],
        "search": {"cv": 0},
        "budget": {"trials": 2},
        "execution": {"workers": 1, "latency_rows": 2},
        "gate": {"bootstrap": 200, "refit": "train+valid"},
        **extra,
    }


def _gate_events(store: Store, campaign: int) -> list[dict[str, object]]:
    return [e.data for e in store.list_events(campaign_id=campaign, kinds=(EventKind.GATE_VERDICT,))]


def test_a_passing_gate_is_typed_and_serialises_as_before(tmp_path: Path) -> None:
    with Store(str(tmp_path / "darkfab.db")) as store:
        factory = Factory(spec_from_dict(_spec("typed"), "test"), store=store)
        result = factory.run()
        gate, beat, champion = result.gate, result.beat, result.champion
        assert isinstance(gate, GateOutcome) and gate.passed is True and champion is not None
        assert isinstance(beat, BeatenModel) and beat is gate.beat
        assert (beat.kind, beat.why, beat.name) == ("baseline", "no champion yet", "class shares of the training data")
        assert isinstance(gate.champion, SealedScore) and beat.score == gate.champion.score
        assert (
            isinstance(gate.candidate, SealedScore)
            and gate.candidate.low <= gate.candidate.score <= gate.candidate.high
        )
        assert gate.trial == champion.trial_id and gate.flagged == ()
        assert isinstance(gate.memorization, MemorizationProbe) and gate.memorization.flagged is False
        assert (gate.sealed_uses, gate.sealed_budget) == (1, 20) and isinstance(gate.sealed_set, SealedSetRef)
        assert isinstance(result.budget, RunBudget)
        assert result.budget.limits == BudgetLimits(trials=2, time_s=None, cpu_s=None)
        assert isinstance(result.budget.spent, BudgetSpent) and result.budget.spent.trials == 2
        refit = champion.refit
        assert isinstance(refit, RefitRecord) and refit is gate.refit and refit.refit
        assert refit.trained_on == "train+valid" and refit.gated_rows is not None and refit.rows > refit.gated_rows
        with pytest.raises(dataclasses.FrozenInstanceError):
            gate.passed = False  # type: ignore[misc]

        doc = result.to_json()
        assert list(doc["gate"]) == [*DECIDED_KEYS, "refit"]
        assert (
            doc["beat"]
            == doc["gate"]["beat"]
            == {
                "kind": "baseline",
                "why": "no champion yet",
                "name": "class shares of the training data",
                "score": beat.score,
            }
        )
        assert list(doc["beat"]) == ["kind", "why", "name", "score"]
        assert list(doc["gate"]["candidate"]) == ["score", "low", "high"]
        assert doc["gate"]["sealed_set"] == {"fingerprint": gate.sealed_set.fingerprint, "split_seed": 0}
        assert list(doc["gate"]["memorization"]) == [
            "sealed_score",
            "perturbed_score",
            "baseline_score",
            "jitter",
            "flagged",
        ]
        assert doc["budget"]["limits"] == {"trials": 2, "time": None, "cpu": None}
        assert list(doc["budget"]["spent"]) == ["trials", "seconds", "cpu_seconds"]
        assert list(doc["champion"]["refit"]) == [
            "trained_on",
            "rows",
            "gated_rows",
            "params",
            "rounds",
            "seconds",
            "gated_artifact",
            "evidence",
        ]
        # the store's summary, the gate_verdict event and the lineage hold the same JSON, byte for byte
        stored = store.get_campaign(result.campaign).summary
        assert json.dumps(stored) == json.dumps(json.loads(json.dumps(doc)))
        (event,) = _gate_events(store, result.campaign)
        assert json.dumps(event) == json.dumps({k: v for k, v in doc["gate"].items() if k != "refit"})
        lineage = factory.lineage(1)["lineage"]
        assert lineage["gate"]["sealed_set"] == doc["gate"]["sealed_set"]
        assert lineage["refit"] == refit.to_dict() and RefitRecord.from_dict(lineage["refit"]) == refit

        again = factory.run(trials=2, seed=3)  # the same configuration again: no gain, the champion stays
        assert again.gate is not None and again.gate.passed is False and again.beat is None
        assert again.champion is not None and again.champion.version == 1
        assert again.champion.refit == refit  # read back from the version's lineage
        assert list(again.to_json()["gate"]) == DECIDED_KEYS and again.to_json()["gate"]["beat"] is None


def test_a_gate_with_no_candidate_keeps_the_short_form(tmp_path: Path) -> None:
    raw = _spec("tight", objective={"constraints": ["model_size_mb <= 0.000001"]})
    with Store(str(tmp_path / "darkfab.db")) as store:
        result = Factory(spec_from_dict(raw, "test"), store=store).run()
        gate = result.gate
        assert isinstance(gate, GateOutcome) and gate.passed is False and "no feasible candidate" in gate.reason
        assert gate.trial is None and gate.candidate is None and gate.refit is None and result.beat is None
        assert result.champion is None and gate.sealed_uses == 0
        doc = result.to_json()
        assert list(doc["gate"]) == ["passed", "reason", "sealed_uses", "sealed_budget", "sealed_set", "flagged"]
        assert doc["gate"]["flagged"] == [] and doc["beat"] is None
        assert json.dumps(store.get_campaign(result.campaign).summary) == json.dumps(doc)
