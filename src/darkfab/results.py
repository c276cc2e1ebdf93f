"""Typed results the factory hands back to the command line and to notebooks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
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


@dataclass(frozen=True)
class ChampionSummary:
    version: int
    trainer: str
    params: dict[str, Any]
    trial_id: int | None
    metrics: dict[str, Any]  # {"valid": {...}, "sealed_test": {metric, score, low, high}}
    promoted_now: bool
    alias: str = "champion"  # "challenger" when deploy.mode puts the winner through a canary or shadow first
    refit: dict[str, Any] | None = None  # what the registered model was refit on after the gate (gate.refit)

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
    beat: dict[str, Any] | None
    gate: dict[str, Any] | None
    trials: dict[str, int]
    budget: dict[str, Any]
    store: str
    leaderboard: list[dict[str, Any]] = field(default_factory=list)
    stopped_because: str = ""
    stop_reason: str = ""  # why, as a darkfab.events.StopReason value (trial_budget, time_budget, paused...)
    leaks: list[dict[str, Any]] = field(default_factory=list)  # columns that gave the target away, and the decision
    task_reason: str = ""  # why the task is classification or regression: the file said so, or what the target held

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def board(self) -> Leaderboard:
        """The leaderboard (best 10) as a :class:`Leaderboard`."""
        return Leaderboard.of(self.leaderboard, self.metric)

    def _repr_html_(self) -> str:
        c = self.champion
        summary: dict[str, Any] = {
            "champion": f"v{c.version} {c.trainer} ({c.alias})" if c else "none",
            "sealed test": _html.sealed(c.metrics) if c else "",
            "beat": (self.beat or {}).get("name") or (self.beat or {}).get("kind") or "",
            "gate": (self.gate or {}).get("reason", ""),
            "trials": self.trials,
            "budget": self.budget,
            "stopped because": self.stopped_because,
            "store": self.store,
        }
        caption = f"darkfab run: factory {self.factory}, campaign {self.campaign_number} ({self.task}, {self.metric})"
        return _html.fields(summary, caption=caption) + self.board()._repr_html_()
