"""Typed results the factory hands back to the command line and to notebooks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal


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
    leaks: list[dict[str, Any]] = field(default_factory=list)  # columns that gave the target away, and the decision

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
