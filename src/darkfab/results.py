"""Typed results the factory hands back to the command line and to notebooks.

The records a campaign ends with (:class:`GateOutcome`, :class:`BeatenModel`, :class:`RunBudget`,
:class:`RefitRecord` and their parts) are frozen dataclasses; each ``to_dict()`` gives the JSON form the
command line, the events, the store and the lineage have always carried, key for key and in the same order.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from . import _html

LEADERBOARD_COLUMNS = ("number", "trainer", "proposer", "value", "reward", "feasible", "state", "params")


@dataclass(frozen=True)
class TrialRow:
    """One line of the live leaderboard."""

    trial_id: int
    number: int
    proposer: str
    trainer: str
    params: dict[str, Any]
    state: str
    value: float | None = None
    reward: float | None = None
    feasible: bool | None = None
    error: str | None = None

    def params_summary(self, width: int = 60) -> str:
        parts = []
        for k, v in self.params.items():
            shown = f"{v:.3g}" if isinstance(v, float) else str(v)
            parts.append(f"{k}={shown}")
        text = " ".join(parts)
        return text if len(text) <= width else text[: width - 1] + "…"


@dataclass(frozen=True)
class Leaderboard:
    """Trials best first (feasible before infeasible, then by reward); a table in a notebook."""

    rows: tuple[TrialRow, ...]
    metric: str = ""

    def __len__(self) -> int:
        return len(self.rows)

    def to_records(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.rows]

    def _repr_html_(self) -> str:
        caption = f"leaderboard ({self.metric} on validation)" if self.metric else "leaderboard"
        return _html.table(self.to_records(), LEADERBOARD_COLUMNS, caption=caption)

    @classmethod
    def of(cls, rows: Sequence[TrialRow | dict[str, Any]], metric: str = "") -> Leaderboard:
        return cls(tuple(r if isinstance(r, TrialRow) else TrialRow(**r) for r in rows), metric)


@dataclass(frozen=True)
class Progress:
    """Sent to the progress callback as the campaign moves."""

    kind: Literal["campaign_started", "trial_started", "trial_finished", "gate", "campaign_finished"]
    message: str
    trials_done: int
    trials_total: int | None
    elapsed_s: float
    time_limit_s: float | None
    leaderboard: tuple[TrialRow, ...] = ()
    row: TrialRow | None = None


@dataclass(frozen=True)
class ScoreSummary:
    metric: str
    score: float
    low: float
    high: float


class _Fields:
    """``to_dict()``: a record's fields, in their order, as its JSON form (for records that rename nothing)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]  # every subclass is a dataclass


@dataclass(frozen=True)
class SealedScore(_Fields):
    """A score on the sealed test rows with its bootstrap interval (``low`` to ``high``)."""

    score: float
    low: float
    high: float


@dataclass(frozen=True)
class SealedSetRef(_Fields):
    """Which sealed test set the gate read: the data's fingerprint and the seed its rows were split with."""

    fingerprint: str
    split_seed: int


@dataclass(frozen=True)
class BeatenModel:
    """What the gate held the candidate against on the sealed rows: the champion, or the trivial baseline.

    A champion has ``version`` and ``trainer``; the baseline has ``name`` (what it predicts) and ``why`` it
    stood in (no champion yet, or the champion could not score the data). ``score`` is its sealed-test score.
    """

    kind: Literal["champion", "baseline"]
    score: float | None = None
    version: int | None = None
    trainer: str | None = None
    why: str | None = None
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "champion":
            return {"kind": self.kind, "version": self.version, "trainer": self.trainer, "score": self.score}
        return {"kind": self.kind, "why": self.why, "name": self.name, "score": self.score}


@dataclass(frozen=True)
class MemorizationProbe(_Fields):
    """The winner scored on jittered copies of the sealed rows (a model that memorised them drops sharply)."""

    sealed_score: float
    perturbed_score: float
    baseline_score: float
    jitter: float
    flagged: bool


@dataclass(frozen=True)
class FlaggedCandidate:
    """A candidate the gate kept out, with each suspicion as recorded (``kind``, ``reason`` and its figures)."""

    trial: int | None
    suspicions: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"trial": self.trial, "suspicions": [dict(x) for x in self.suspicions]}


_REFIT_KEYS = ("trained_on", "rows", "gated_rows", "params", "rounds", "seconds", "gated_artifact", "why", "evidence")


@dataclass(frozen=True)
class RefitRecord:
    """What the registered model was fit on after the gate (``gate.refit``).

    Refit: ``trained_on`` names the rows (``train+valid``...), with ``gated_rows``, ``params``, ``rounds``,
    ``seconds`` and the ``evidence`` the gate's figures are about. Kept as gated: ``trained_on`` is ``train``
    and ``why`` says why it was not refit. ``gated_artifact`` is the model the gate scored, either way.
    """

    trained_on: str
    rows: int
    gated_artifact: str
    why: str | None = None
    gated_rows: int | None = None
    params: dict[str, Any] | None = None
    rounds: str | None = None
    seconds: float | None = None
    evidence: str | None = None

    @property
    def refit(self) -> bool:
        return self.evidence is not None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _REFIT_KEYS if getattr(self, k) is not None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RefitRecord:
        """The record as a version's lineage stores it (``lineage["refit"]``)."""
        return cls(**{k: d[k] for k in _REFIT_KEYS if k in d})


@dataclass(frozen=True)
class GateOutcome:
    """The gate's decision on one campaign, with its evidence.

    When no candidate reached the sealed comparison (none completed, none feasible, every one flagged)
    ``trial`` is None and so are the figures; otherwise ``trial`` is the candidate held against ``beat``'s
    model, ``delta`` its gain (> 0 is better; NaN without a champion), ``p_better`` the bootstrap probability
    of a gain above ``gate.min_improvement``. ``beat`` is set only when it passed. ``sealed_uses`` of
    ``sealed_budget`` counts the gate decisions ``sealed_set`` has informed. ``refit`` is set when a version
    was registered.
    """

    passed: bool
    reason: str
    sealed_uses: int
    sealed_budget: int
    sealed_set: SealedSetRef
    flagged: tuple[FlaggedCandidate, ...] = ()
    trial: int | None = None
    delta: float | None = None
    p_better: float | None = None
    beat: BeatenModel | None = None
    candidate: SealedScore | None = None
    champion: SealedScore | None = None
    memorization: MemorizationProbe | None = None  # None: the probe had no figures (JSON ``{}``)
    weak_evidence: bool = False
    refit: RefitRecord | None = None

    def to_dict(self) -> dict[str, Any]:
        sealed = {
            "sealed_uses": self.sealed_uses,
            "sealed_budget": self.sealed_budget,
            "sealed_set": self.sealed_set.to_dict(),
        }
        flagged = [f.to_dict() for f in self.flagged]
        if self.trial is None:
            return {"passed": self.passed, "reason": self.reason, **sealed, "flagged": flagged}
        out: dict[str, Any] = {
            "passed": self.passed,
            "reason": self.reason,
            "trial": self.trial,
            "delta": self.delta,
            "p_better": self.p_better,
            "beat": self.beat.to_dict() if self.beat else None,
            "candidate": self.candidate.to_dict() if self.candidate else None,
            "champion": self.champion.to_dict() if self.champion else None,
            "memorization": self.memorization.to_dict() if self.memorization else {},
            "flagged": flagged,
            "weak_evidence": self.weak_evidence,
            **sealed,
        }
        if self.refit is not None:
            out["refit"] = self.refit.to_dict()
        return out


@dataclass(frozen=True)
class BudgetLimits:
    """The campaign's limits (``budget:`` in the factory file); None is no limit. JSON: trials, time, cpu."""

    trials: int | None
    time_s: float | None
    cpu_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"trials": self.trials, "time": self.time_s, "cpu": self.cpu_s}


@dataclass(frozen=True)
class BudgetSpent(_Fields):
    """What the campaign spent: trials counted against the budget, wall seconds and trial CPU seconds."""

    trials: int
    seconds: float
    cpu_seconds: float


@dataclass(frozen=True)
class RunBudget:
    """A campaign's budget: its limits and what it spent (a resumed campaign counts what it spent before)."""

    limits: BudgetLimits
    spent: BudgetSpent

    def to_dict(self) -> dict[str, Any]:
        return {"limits": self.limits.to_dict(), "spent": self.spent.to_dict()}


@dataclass(frozen=True)
class ChampionSummary:
    version: int
    trainer: str
    params: dict[str, Any]
    trial_id: int | None
    metrics: dict[str, Any]  # {"valid": {...}, "sealed_test": {metric, score, low, high}}
    promoted_now: bool
    alias: str = "champion"  # "challenger" when deploy.mode puts the winner through a canary or shadow first
    refit: RefitRecord | None = None  # what the registered model was refit on after the gate (gate.refit)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name != "refit"}
        return {**out, "refit": self.refit.to_dict() if self.refit else None}

    def _repr_html_(self) -> str:
        return _html.fields(
            {
                "version": self.version,
                "alias": self.alias,
                "trainer": self.trainer,
                "params": self.params,
                "sealed test": _html.sealed(self.metrics),
                "promoted now": self.promoted_now,
            },
            caption=f"{self.alias} v{self.version}",
        )


@dataclass(frozen=True)
class RunResult:
    """What one `darkfab run` did: the champion, what it beat, the trials and the budget spent."""

    factory: str
    campaign: int
    campaign_number: int
    resumed: bool
    warm_started_from: int
    task: str
    metric: str
    champion: ChampionSummary | None
    beat: BeatenModel | None  # the model the winner beat (the gate's ``beat``); None when nothing passed
    gate: GateOutcome | None  # None when the campaign was paused before its gate
    trials: dict[str, int]
    budget: RunBudget
    store: str
    leaderboard: list[dict[str, Any]] = field(default_factory=list)
    stopped_because: str = ""
    stop_reason: str = ""  # why, as a darkfab.events.StopReason value (trial_budget, time_budget, paused...)
    leaks: list[dict[str, Any]] = field(default_factory=list)  # columns that gave the target away, and the decision
    task_reason: str = ""  # why the task is classification or regression: the file said so, or what the target held
    data_profile: dict[str, Any] = field(default_factory=dict)  # the data's meta-features (darkfab.data.DataProfile)

    def to_json(self) -> dict[str, Any]:
        """The JSON form (``darkfab run --json``, the campaign's stored summary): the typed parts as ``to_dict()``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.to_dict() if hasattr(value, "to_dict") else copy.deepcopy(value)
        return out

    def board(self) -> Leaderboard:
        """The leaderboard (best 10) as a :class:`Leaderboard`."""
        return Leaderboard.of(self.leaderboard, self.metric)

    def _repr_html_(self) -> str:
        c = self.champion
        summary: dict[str, Any] = {
            "champion": f"v{c.version} {c.trainer} ({c.alias})" if c else "none",
            "sealed test": _html.sealed(c.metrics) if c else "",
            "beat": (self.beat.name or self.beat.kind) if self.beat else "",
            "gate": self.gate.reason if self.gate else "",
            "trials": self.trials,
            "budget": self.budget.to_dict(),
            "stopped because": self.stopped_because,
            "store": self.store,
        }
        caption = f"darkfab run: factory {self.factory}, campaign {self.campaign_number} ({self.task}, {self.metric})"
        return _html.fields(summary, caption=caption) + self.board()._repr_html_()
